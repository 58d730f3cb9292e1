"""A plan's calls: which register-block tile runs at which src/vec/dst offsets over which slice of the
step tables, grouped into work items. Planners describe them as grids (`CallsBuilder.grid`); flushes,
offsets, item boundaries and the cost model work from the descriptions, and the call table itself
(calls x CALL_FIELDS) is built only when a kernel runs (`Calls.table`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CALL_COLUMNS = ("tile", "src", "vec", "dst", "step_begin", "step_count")   # call table columns, in order
CALL_FIELDS = len(CALL_COLUMNS)


@dataclass(frozen=True)
class Grid:
    """One `CallsBuilder.grid` of calls, described rather than stacked: its blocks, offset coefficients,
    step slice and walk order, and the tile index of each (vector, row, column) block-size combination."""

    vectors: tuple           # (start, size) blocks of each axis
    rows: tuple
    cols: tuple
    src: tuple               # offset coefficients (per vector start, row start or per-row sequence, column, constant)
    vec: tuple
    dst: tuple
    steps: tuple             # (step_begin, step_count) of every call
    rows_outer: bool
    tiles: tuple             # ((v size, h size, w size), tile index), one per combination present

    @property
    def count(self) -> int:
        """Calls in the grid."""
        return len(self.vectors) * len(self.rows) * len(self.cols)

    def groups(self):
        """(tile index, calls) of each block-size combination: calls are the product of the axes' counts."""
        counts = [_size_counts(axis) for axis in (self.vectors, self.rows, self.cols)]
        return [(index, counts[0][v] * counts[1][h] * counts[2][w]) for (v, h, w), index in self.tiles]

    def largest_offset(self) -> int:
        """The largest src, vec or dst base offset of its calls (0 at least): each offset is a sum of
        independent per-axis terms, so its maximum is the sum of the terms' maxima."""
        if not self.count:
            return 0
        largest = 0
        for a, b, c, d in (self.src, self.vec, self.dst):
            rows = list(b) if np.ndim(b) else [b * r for r, _ in self.rows]
            largest = max(largest, max(a * v for v, _ in self.vectors) + max(rows) + max(c * q for q, _ in self.cols)
                          + d)
        return largest

    def fill(self, out: np.ndarray) -> None:
        """Write the grid's rows of the call table into `out` (count x CALL_FIELDS), in call order,
        without temporaries of the grid's size."""
        shape = (len(self.vectors), len(self.rows), len(self.cols))
        view = out.reshape(shape[1], shape[0], shape[2], CALL_FIELDS).transpose(1, 0, 2, 3) if self.rows_outer \
            else out.reshape(*shape, CALL_FIELDS)
        v0 = np.array([b[0] for b in self.vectors], dtype=np.int64)[:, None, None]
        r0 = np.array([b[0] for b in self.rows], dtype=np.int64)[None, :, None]
        c0 = np.array([b[0] for b in self.cols], dtype=np.int64)[None, None, :]
        sizes = [np.array([b[1] for b in axis]) for axis in (self.vectors, self.rows, self.cols)]
        for (v, h, w), index in self.tiles:
            view[..., 0][np.ix_(*(np.flatnonzero(a == size) for a, size in zip(sizes, (v, h, w))))] = index
        for column, (a, b, c, d) in zip((1, 2, 3), (self.src, self.vec, self.dst)):
            row_term = np.asarray(b, dtype=np.int64)[None, :, None] if np.ndim(b) else b * r0
            view[..., column] = a * v0 + row_term
            view[..., column] += c * c0 + d
        view[..., 4], view[..., 5] = self.steps


def _size_counts(blocks) -> dict:
    """Blocks of each size on one axis."""
    counts: dict = {}
    for _, size in blocks:
        counts[size] = counts.get(size, 0) + 1
    return counts


@dataclass(frozen=True, eq=False)
class Calls:
    """A plan's calls, described: grids and explicit rows (int64 arrays, calls x CALL_FIELDS), in call order.
    The call table is built from them only when asked (`table`); planning, emitting IR and pricing a plan
    work from the descriptions, in memory proportional to the grids and items rather than the calls."""

    parts: tuple     # Grid or np.ndarray, in call order
    count: int

    @classmethod
    def from_table(cls, table: np.ndarray) -> "Calls":
        """Calls given as an explicit table (calls x CALL_FIELDS), e.g. a modified copy of a plan's."""
        table = np.asarray(table, dtype=np.int64).reshape(-1, CALL_FIELDS)
        return cls((table,), len(table))

    @property
    def explicit(self) -> bool:
        """Whether some calls are explicit rows (then the table is the only description of them)."""
        return any(isinstance(part, np.ndarray) for part in self.parts)

    def groups(self):
        """(tile index, calls, step_begin, step_count) groups covering every call: one per block-size
        combination of each grid, one per row of explicit rows."""
        for part in self.parts:
            if isinstance(part, Grid):
                yield from ((index, n, *part.steps) for index, n in part.groups() if n)
            else:
                yield from ((int(t), 1, int(b), int(n)) for t, b, n in part[:, [0, 4, 5]])

    def largest_offset(self) -> int:
        """The largest src, vec or dst base offset of any call (0 at least)."""
        return max([0] + [part.largest_offset() if isinstance(part, Grid) else int(part[:, 1:4].max(initial=0))
                          for part in self.parts])

    def table(self) -> np.ndarray:
        """All calls as an int64 array (calls x CALL_FIELDS), in call order."""
        table = np.empty((self.count, CALL_FIELDS), dtype=np.int64)
        at = 0
        for part in self.parts:
            n = part.count if isinstance(part, Grid) else len(part)
            if isinstance(part, Grid):
                part.fill(table[at:at + n])
            else:
                table[at:at + n] = part
            at += n
        # finish() counts each grid call's flushes alone: no two calls of the planners' grids share a dst (see
        # finish); explicit rows are counted from this table.
        assert self.explicit or len(np.unique(table[:, 3])) == len(table), "grid calls share a dst offset"
        return table


class CallsBuilder:
    """Collects calls and item boundaries while a pass planner walks its work.

    A planner describes whole grids of calls at once (`grid`); they are recorded, not stacked, so planning
    a layer with billions of calls takes memory for its grids and items only (`Calls`)."""

    def __init__(self) -> None:
        self.parts: list = []            # Grid, or lists of explicit rows
        self.count = 0
        self.item_starts = [0]
        self.item_costs: list = []        # per item: accumulator-steps (sum over its calls of accumulators x steps)
        self._pending = 0
        self.tiles: dict[tuple, int] = {}

    def call(self, tile_key: tuple, src: int, vec: int, dst: int, steps: tuple[int, int]) -> None:
        """Record one tile invocation; tile_key = (h, w, v)."""
        index = self.tiles.setdefault(tile_key, len(self.tiles))
        if not self.parts or not isinstance(self.parts[-1], list):
            self.parts.append([])
        self.parts[-1].append([index, src, vec, dst, steps[0], steps[1]])
        self.count += 1
        self._pending += tile_key[0] * tile_key[1] * tile_key[2] * steps[1]

    def end_item(self) -> None:
        """Close the current work item."""
        self.item_starts.append(self.count)
        self.item_costs.append(self._pending)
        self._pending = 0

    def grid(self, vectors: list, rows: list, cols: list, src: tuple, vec: tuple, dst: tuple,
             steps: tuple[int, int], rows_outer: bool = False, item_cols: list | None = None) -> None:
        """Calls for every (vector block, row block, column block), one work item per (vector, row) block,
        vector blocks outermost, or row blocks with `rows_outer`; with `item_cols`, (first, count) runs
        partitioning the column blocks, one item per run of each (vector, row) block instead.

        Blocks are (start, size) lists; src/vec/dst are coefficients (per vector start, row start,
        column start, constant) of the offsets, where a row coefficient may instead be a sequence of
        one offset per row block (rows that are not evenly spaced, e.g. WTGRAD's (r, s) pairs); the
        tile of a call is (row size, column size, vectors); every call reduces the step slice `steps`."""
        axes = [_size_counts(axis) for axis in (vectors, rows, cols)]
        firsts = [{} for _ in axes]
        for first, axis in zip(firsts, (vectors, rows, cols)):
            for i, (_, size) in enumerate(axis):
                first.setdefault(size, i)
        # Tiles are numbered in the order a (vector, row, column)-major walk first meets them.
        combos = sorted(((firsts[0][v] * len(rows) + firsts[1][h]) * len(cols) + firsts[2][w], (h, w, v))
                        for v in axes[0] for h in axes[1] for w in axes[2])
        tiles = tuple(((v, h, w), self.tiles.setdefault((h, w, v), len(self.tiles))) for _, (h, w, v) in combos)
        as_tuple = lambda coefficients: tuple(tuple(int(x) for x in b) if np.ndim(b) else b for b in coefficients)
        part = Grid(tuple(vectors), tuple(rows), tuple(cols), as_tuple(src), as_tuple(vec), as_tuple(dst),
                    tuple(steps), rows_outer, tiles)
        self.parts.append(part)
        runs = item_cols if item_cols is not None else ([(0, len(cols))] if cols else [])
        assert [f for f, _ in runs] == [sum(n for _, n in runs[:i]) for i in range(len(runs))] and \
            sum(n for _, n in runs) == len(cols), "item_cols must partition the column blocks in order"
        blocks = [(v, h) for _, v in vectors for _, h in rows] if not rows_outer else \
            [(v, h) for _, h in rows for _, v in vectors]
        widths = np.cumsum([0] + [w for _, w in cols])
        ends = [first + count for first, count in runs]
        run_steps = [int(widths[e] - widths[f]) * steps[1] for f, e in zip((f for f, _ in runs), ends)]
        for i, (v, h) in enumerate(blocks):
            self.item_starts.extend(self.count + i * len(cols) + e for e in ends)
            self.item_costs.extend(v * h * c for c in run_steps)
        self.count += part.count

    def calls(self) -> Calls:
        """The recorded calls."""
        return Calls(tuple(np.array(p, dtype=np.int64).reshape(-1, CALL_FIELDS) if isinstance(p, list) else p
                           for p in self.parts), self.count)

    def table(self) -> np.ndarray:
        """All calls as an int64 array (calls x CALL_FIELDS)."""
        return self.calls().table()


def block_steps(table: np.ndarray, blocks: tuple) -> np.ndarray:
    """Steps each call reduces in each reduction block (calls x blocks): its slice within the block."""
    begin, end = table[:, 4:5], table[:, 4:5] + table[:, 5:6]
    block_begin = np.array([b for b, _ in blocks])[None, :]
    block_end = block_begin + np.array([n for _, n in blocks])[None, :]
    return np.maximum(0, np.minimum(end, block_end) - np.maximum(begin, block_begin))
