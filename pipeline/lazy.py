"""numpy, pandas and pyarrow, imported on first use rather than when a module is imported.

An up-to-date `emoprep run` only reads small JSON records and file stats, yet the stage
catalog imports every stage module; with these libraries imported eagerly, a no-op spent
~0.4 s (a fast day; ~1 s on a slow one) importing them and nothing using them. Modules write
`from emoprep.pipeline.lazy import np, pd` instead of `import pandas as pd`: type checkers see
the real modules, the interpreter sees a stand-in that imports the library on the first
attribute access. Code that runs a module-level expression on them (a constant array, a type
alias) still imports the library at import time, so keep such things inside functions.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__all__ = ["np", "npt", "pa", "pd", "pq"]


class LazyModule(types.ModuleType):
    """A stand-in for `name`: every attribute is looked up on the real module, imported the
    first time one is asked for. Nothing is cached here, so a monkeypatched attribute is seen."""

    def __getattr__(self, attr: str) -> Any:
        module = sys.modules.get(self.__name__) or importlib.import_module(self.__name__)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self.__name__!r}>"


if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
else:
    np = LazyModule("numpy")
    npt = LazyModule("numpy.typing")
    pd = LazyModule("pandas")
    pa = LazyModule("pyarrow")
    pq = LazyModule("pyarrow.parquet")
