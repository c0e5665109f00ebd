"""What every entry point does with an error it expects: one line on stderr that names the file or
folder and the cause, exit status 1, no traceback.

Expected are the project's own errors (a bad config, a missing stage output:
each entry point names its classes) and any ``OSError``: a full disk, a
read-only or foreign folder, a missing file. Anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Type

from ugr.io.atomic import OutputError


def describe_os_error(err: OSError, output: str | Path) -> str:
    """One line for an ``OSError``: ours carry their message; the system's name their file, or else ``output``
    (the folder the entry point writes), as Lightning's loggers raise them without one."""
    if isinstance(err, OutputError) or err.errno is None:
        return str(err)
    where = err.filename if err.filename is not None else f"writing in {output}"
    return f"{where}: {err.strerror}"


# What str.splitlines() breaks at: a file or folder name may hold any of them.
_LINE_BREAKS = {ord(c): c.encode("unicode_escape").decode() for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def one_line(message: str) -> str:
    """``message`` with its line breaks escaped (``\\n``): a name holding one (file names may) must not split
    the error over lines, or hide its cause on the next."""
    return message.translate(_LINE_BREAKS)


@contextmanager
def one_line_errors(prog: str, output: str | Path, *expected: Type[Exception]) -> Iterator[None]:
    """Turns the errors an entry point expects into ``PROG: error: MESSAGE`` and exit status 1."""
    try:
        yield
    except OSError as err:
        sys.exit(f"{prog}: error: {one_line(describe_os_error(err, output))}")
    except expected as err:
        sys.exit(f"{prog}: error: {one_line(str(err))}")


def gpu_problem(count: int, option: str) -> Optional[str]:
    """Why ``count`` GPUs cannot be used here (None when they can): said before Lightning or torch would
    fail with a traceback."""
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() >= count:
        return None
    if torch.version.cuda is None:
        found = f"this torch ({torch.__version__}) is built without CUDA"
    else:
        found = f"torch {torch.__version__} sees {torch.cuda.device_count()} GPU(s) here"
    return (
        f"{option} needs {count} GPU(s), but {found}; install a CUDA torch with "
        f"PYTHON=/path/to/python-with-cuda-torch tools/install.sh (see tools/install.sh --help), "
        f"or run on the CPU"
    )
