"""L1: order events that need a price but have none (e.g. Databento's undefined-price sentinel)."""

from __future__ import annotations

import polars as pl
from pydantic import Field

from ticklake.quality.base import (
    PartitionContext,
    Rule,
    RuleFinding,
    RuleParameters,
    Severity,
    register_rule,
    top_offending,
)
from ticklake.schemas import DatasetSchema


class NullPriceParameters(RuleParameters):
    actions_requiring_price: tuple[str, ...] = Field(
        ("add", "modify"), description="l3 actions whose price must be present"
    )


@register_rule
class NullOrderPriceRule(Rule):
    id = "L1"
    name = "l3_null_prices"
    description = (
        "Order events whose action requires a price (adds and modifies by default) must "
        "have one. Readers map vendor sentinels to null (Databento's undefined price "
        "9223372036854775807), so this counts them. Unit: rows with such an action; the "
        "statistics count null prices per action, including actions where null is normal "
        "(clear, cancel)."
    )
    severity = Severity.error
    schemas = ("l3",)
    Parameters = NullPriceParameters

    def columns(self, schema: DatasetSchema) -> set[str]:
        return {
            schema.ts_column,
            "instrument",
            "seq",
            "action",
            "side",
            "order_id",
            "price",
            "size",
        }

    def check(self, frame: pl.DataFrame, context: PartitionContext) -> RuleFinding:
        params = self.parameters
        assert isinstance(params, NullPriceParameters)
        needs_price = pl.col("action").is_in(list(params.actions_requiring_price))
        checked = frame.filter(needs_price)
        bad = checked.filter(pl.col("price").is_null())
        by_action = frame.filter(pl.col("price").is_null()).group_by("action").len()
        stats = {f"null_price_{a}": float(n) for a, n in by_action.iter_rows()}
        return RuleFinding(context.day, checked.height, bad.height, top_offending(bad), stats)
