"""fairseq user directory: ``fairseq-train DATA --user-dir translation --criterion pskd --alpha-T 0.8``.

Importing the package registers the ``pskd`` criterion with fairseq (fairseq imports a ``--user-dir``
as a package). Data preparation, training, generation and scoring: ``python -m translation.prepare``,
``python -m translation.run``.
"""

from common.cli import silence_known_warnings

silence_known_warnings()  # before fairseq's import, which prints torch.jit's and its own known noise
from translation import criterion  # noqa: E402, F401 - registers --criterion pskd
