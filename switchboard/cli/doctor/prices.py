"""Doctor's model price check: the price table runs are costed and budgeted by."""

from __future__ import annotations

from flows.usage import DEFAULT_PRICES, PriceError
from switchboard.cli.doctor.checks import Check
from switchboard.settings import Settings


def prices(settings: Settings) -> Check:
    """Whether the ``SWITCHBOARD_PRICES`` file (if any) reads, and how many models are priced."""
    if settings.prices is None:
        return Check("model prices", "info", f"built-in list prices for {len(DEFAULT_PRICES)} models")
    try:
        table = settings.price_table()
    except PriceError as exc:
        return Check(
            "model prices",
            "fail",
            str(exc),
            fix="fix the file (`model: {input: USD per 1M tokens, output: USD per 1M tokens}`) or unset "
            "SWITCHBOARD_PRICES; runs fail before they start until then",
        )
    added = len(table) - len(DEFAULT_PRICES)
    source = f"{settings.prices} over the built-in list" + (f", {added} added" if added else "")
    return Check("model prices", "ok", f"{len(table)} models priced ({source})")
