"""What the tests may assume about this machine.

PyTensor's C backend (mode CVM) needs a system BLAS, which a fresh machine may lack. Tests
that only need *a* fast CPU mode use :data:`CPU_MODE`: CVM where a BLAS is installed, else
NUMBA (which needs none). CI installs a BLAS and sets ``SDA_REQUIRE_CVM=1``: there CVM must
be available, so that no CVM test is silently skipped.
"""

import os

import pytest

from sda.modes import available_modes

HAS_CVM = "CVM" in available_modes()
CVM_REQUIRED = bool(os.environ.get("SDA_REQUIRE_CVM"))

#: the mode for tests that need a compiled CPU mode but not CVM in particular
CPU_MODE = "CVM" if HAS_CVM or CVM_REQUIRED else "NUMBA"

#: for tests about CVM itself: skipped with a reason where no BLAS is installed (never in CI)
requires_cvm = pytest.mark.skipif(not HAS_CVM and not CVM_REQUIRED,
                                  reason="mode CVM needs a system BLAS (apt-get install libopenblas-dev)")
