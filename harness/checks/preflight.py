"""Before any check: can every backend be built for this configuration?

:func:`preflight` builds each backend once, so that a class that cannot be imported
or constructed is refused as bad input (exit code 2) before anything is computed or
written.
"""

from __future__ import annotations

from harness.checks.config import CheckConfig


def preflight(config: CheckConfig, data=None) -> list:
    """Build every backend of ``config``; return the models (a ProtocolError if one fails)."""
    from harness.checks.run import build_models

    return build_models(config)
