"""fairseq user directory: ``fairseq-train DATA --user-dir translation --criterion pskd --alpha-T 0.8``.

Importing the package registers the ``pskd`` criterion with fairseq (fairseq imports a ``--user-dir``
as a package). Data preparation, training, generation and scoring: ``python -m translation.prepare``,
``python -m translation.run``.
"""

from translation import criterion  # noqa: F401 - registers --criterion pskd
