"""Progress lines on stderr and catching native stderr: see :mod:`harness.runtime.console`
(the core module the benchmark uses too); re-exported here for the report."""

from __future__ import annotations

from harness.runtime.console import PROFILER_NOISE, native_stderr, quiet_profiler, to_stderr

__all__ = ["PROFILER_NOISE", "native_stderr", "quiet_profiler", "to_stderr"]
