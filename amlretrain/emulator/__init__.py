"""The local emulator: the real retraining services on loopback, with Azurite for storage.

One loopback HTTP server speaks the ARM ``Microsoft.MachineLearning/webServices``
provider, the classic management API, the Batch Execution Service and the
request-response service; blobs live in Azurite. Never imported by the library itself.

Example:
    >>> from amlretrain.emulator import Emulator
    >>> with Emulator() as emu:                                  # doctest: +SKIP
    ...     info = emu.info
    ...     credential = emu.credential()
"""

from __future__ import annotations

from amlretrain.emulator._emulator import Emulator, EmulatorCredential, EmulatorInfo
from amlretrain.emulator.faults import Fault, Faults

__all__ = ["Emulator", "EmulatorCredential", "EmulatorInfo", "Fault", "Faults"]
