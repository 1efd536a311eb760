"""The PAT a notebook or script sends to the Agnes REST API, read from the environment.

A missing PAT stops the cell with one line that says where to get one and how to set it
(a real exception, so Run All and nbval stop there too).
"""

from __future__ import annotations

import os

from jupyter_agnes.magics.errors import AgnesMagicError

PAT_ENV = "AGNES_PAT"


class MissingPATError(AgnesMagicError):
    """No PAT in the environment; shown as its one-line message, without a traceback."""


def missing_pat_message(var: str = PAT_ENV) -> str:
    from jupyter_agnes.cli.hints import cli_command
    from jupyter_agnes.paths import default_data_dir

    create = cli_command(default_data_dir(), "token create --email YOU --name notebook")
    return (
        f"{var} is not set: run `%env {var}=agnes_pat_…` in a scratch cell with the PAT "
        f"`make run` printed (then delete that cell), or create one with `{create}`"
    )


def pat_from_env(var: str = PAT_ENV) -> str:
    """The personal access token in `$var`; MissingPATError when it is unset or empty."""
    token = os.environ.get(var, "").strip()
    if not token:
        raise MissingPATError(missing_pat_message(var))
    return token
