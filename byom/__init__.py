"""What every layer of byom-gateway shares: the one error hierarchy (``byom.errors``).

This package imports nothing from the project, so ``adapters/``, ``catalog/`` and
``datasources/`` can depend on it without depending on the front door (``gateway/``).
"""
