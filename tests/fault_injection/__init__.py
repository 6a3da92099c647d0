"""Fault injection into the product's child processes (see ``sitecustomize``)."""

from __future__ import annotations

import os
from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent


def fault_environment(fault: str, fired: Path, at: int = 3, role: str = "classify") -> dict[str, str]:
    """Variables that make the product's processes (of ``role``) suffer ``fault``; see ``sitecustomize``."""
    return {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(DIRECTORY), os.environ.get("PYTHONPATH")])),
        "SENTISTREAM_TEST_FAULT": fault,
        "SENTISTREAM_TEST_FAULT_AT": str(at),
        "SENTISTREAM_TEST_FAULT_FIRED": str(fired),
        "SENTISTREAM_TEST_FAULT_ROLE": role,
    }
