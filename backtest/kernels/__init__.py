"""Kernels: numba functions over arrays (``*_nb``) and their plain-Python reference twins.

Kernels take NumPy arrays, integer enums and the ``POLICY_DTYPE`` parameter record; they
never call back into Python. See :mod:`backtest.kernels.liquidation_nb` for the account model
and :mod:`backtest.kernels.reference` for the twin used by parity tests.
"""

from backtest.kernels.enums import (
    N_PRODUCTS,
    N_STEP_METRICS,
    POLICY_DTYPE,
    RECORD_FIELDS,
    FillPrice,
    PolicyFamily,
    Product,
    StepMetric,
    TriggerPrice,
)

__all__ = [
    "N_PRODUCTS",
    "N_STEP_METRICS",
    "POLICY_DTYPE",
    "RECORD_FIELDS",
    "FillPrice",
    "PolicyFamily",
    "Product",
    "StepMetric",
    "TriggerPrice",
]
