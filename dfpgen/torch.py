"""`dfpgen.torch`, the documented import path of the PyTorch front end (dfpgen.frontends.torch)."""

from dfpgen.frontends.torch import *  # noqa: F401,F403
from dfpgen.frontends.torch import __all__  # noqa: F401
