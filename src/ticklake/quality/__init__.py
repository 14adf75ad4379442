"""Data quality: registered rules, validation runs, reports and day quarantine.

Examples:
    >>> from ticklake.quality import rule_classes
    >>> "R1" in [r.id for r in rule_classes()]
    True
"""

from ticklake.quality.base import (
    MAX_OFFENDING_ROWS,
    DatasetContext,
    PartitionContext,
    Rule,
    RuleFinding,
    RuleParameters,
    Severity,
)
from ticklake.quality.registry import (
    get_rule_class,
    register_rule,
    rule_classes,
    select_rule_classes,
)
from ticklake.quality.report import RuleSummary, ValidationReport
from ticklake.quality.runner import validate_dataset

__all__ = [
    "MAX_OFFENDING_ROWS",
    "DatasetContext",
    "PartitionContext",
    "Rule",
    "RuleFinding",
    "RuleParameters",
    "RuleSummary",
    "Severity",
    "ValidationReport",
    "get_rule_class",
    "register_rule",
    "rule_classes",
    "select_rule_classes",
    "validate_dataset",
]
