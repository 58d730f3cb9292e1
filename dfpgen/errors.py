"""Exception types: every failure a user can cause has its own type and a message that names the field."""


class DFPGenError(Exception):
    """Base class of every error dfpgen raises on purpose."""


class NumericsError(DFPGenError, ValueError):
    """Bad numerics arguments: bit width, rounding mode, overflow policy or chain length."""


class NonFiniteError(NumericsError):
    """A tensor to be quantized holds NaN or Inf."""


class FormatError(NumericsError):
    """An unknown or malformed number-format name (dfpgen.formats.get): the message lists the valid ones."""


class DTypeError(DFPGenError, TypeError):
    """An array has the wrong element type (e.g. integers where floats are required)."""


class SpecError(DFPGenError, ValueError):
    """A convolution shape field is out of range or inconsistent."""


class DescriptorError(SpecError):
    """A malformed benchdnn descriptor (unknown entry, missing value, inconsistent sizes)."""


class UnsupportedError(DFPGenError, ValueError):
    """A well-formed problem dfpgen does not compute (3-D convolutions)."""


class CatalogError(DFPGenError, LookupError):
    """An unknown network or layer, or a malformed catalog file."""


class PlanError(DFPGenError, ValueError):
    """A blocking that cannot be planned for this spec and target (registers, divisibility)."""


class TargetError(DFPGenError, RuntimeError):
    """An unknown ISA or CPU, or a kernel whose ISA the host cannot execute."""


class CompileError(DFPGenError, RuntimeError):
    """LLVM rejected the emitted IR (a bug in dfpgen: the message carries the IR location)."""


class ShapeError(DFPGenError, ValueError):
    """A tensor passed to a kernel does not have the shape its spec requires."""


class SizeError(DFPGenError, MemoryError):
    """A layer too large to plan or run here: its estimated memory exceeds what is available, or its
    offsets pass 2**31. A MemoryError, so code that already handles running out of memory handles it."""


class CacheEntryError(DFPGenError):
    """A plan-cache entry that cannot be served (damaged, unreadable, or holding another kernel); the plan cache
    catches it and the kernel is rebuilt, so it never reaches a user."""


class PrecisionScheduleError(DFPGenError, ValueError):
    """A bad precision schedule: a malformed --precision-ladder, a rung out of range, a bad MuPPET parameter."""
