"""Quality rules: one vocabulary for bronze's row checks and gold's table expectations.

A rule is `not_null(a, b)`, `unique(a, b)`, `accepted_values(col: v1, v2)`, `row_count OP N`, or
(bronze only, from `primary_key`) `primary_key(a, b)`: not null and unique.

- Bronze takes its rules from the dataset config (`primary_key` and `quality`) and applies each
  to every row: a row that breaks one is quarantined with the rule's reason, and the run fails
  when more than `max_rejected_fraction` of the rows are rejected.
- A gold model states its rules in `-- expect:` lines of its leading comments; each must hold
  for the model's whole result, or the model is not published.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from dwlib.config import QualityRules

NAME = r"[a-z_][a-z0-9_]*"
EXPECT = re.compile(r"^\s*--\s*expect:\s*(?P<rule>.+?)\s*$", re.IGNORECASE)
ROW_COUNT = re.compile(r"^row_count\s*(?P<op>>=|<=|==|=|>|<)\s*(?P<n>\d+)$")
COLUMN_RULE = re.compile(rf"^(?P<kind>unique|not_null)\((?P<cols>{NAME}(\s*,\s*{NAME})*)\)$")
ACCEPTED = re.compile(rf"^accepted_values\((?P<col>{NAME})\s*:\s*(?P<values>[^)]*[^\s)][^)]*)\)$")
ROWS_COLUMN = "__pp_dw_rows__"  # the row count of each group in a uniqueness check
WRITE = "write row_count > N, unique(col), not_null(col) or accepted_values(col: a, b)"


class QualityError(ValueError):
    """A rule that is not understood."""


@dataclass(frozen=True)
class Rule:
    kind: str  # not_null, unique, accepted_values, row_count, primary_key
    columns: tuple[str, ...] = ()
    op: str = ""  # row_count
    value: int = 0  # row_count
    values: tuple[str, ...] = ()  # accepted_values, as text (Spark compares the column cast to string)

    def __str__(self) -> str:
        if self.kind == "row_count":
            return f"row_count {self.op} {self.value}"
        if self.kind == "accepted_values":
            return f"accepted_values({self.columns[0]}: {', '.join(self.values)})"
        return f"{self.kind}({', '.join(self.columns)})"


def _text(value: Any) -> str:
    """A config value as the column's text: JSON true is Spark's `true`."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def parse_rule(text: str) -> Rule:
    """One rule as a gold model writes it after `-- expect:`."""
    rule = text.strip()
    if m := ROW_COUNT.match(rule):
        return Rule("row_count", op="=" if m["op"] == "==" else m["op"], value=int(m["n"]))
    if m := COLUMN_RULE.match(rule):
        return Rule(m["kind"], columns=tuple(c.strip() for c in m["cols"].split(",")))
    if m := ACCEPTED.match(rule):
        values = tuple(v.strip().strip("'\"") for v in m["values"].split(","))
        return Rule("accepted_values", columns=(m["col"],), values=values)
    raise QualityError(f"expectation {rule!r} is not understood; {WRITE}")


# A comment that looks meant as an expectation: its text starts with a word like `expect` followed by a colon or
# by a rule (`-- expect unique(x)`, `-- expects: ...`, `-- expect : ...`, `--- expect: ...`, `/* expect: ... */`).
LOOSE_EXPECT = re.compile(
    r"^[\s\-/*]*expect\w*\s*(:|(row_count|unique|not_null|accepted_values|primary_key)\b)", re.IGNORECASE
)
HOW = "write `-- expect: RULE` on its own line in the comments before the SELECT"


def comments(sql: str) -> list[tuple[int, str, bool, bool]]:
    """The comments of a SQL text, in order: (line number, one line of the comment's text, whether it comes before
    any SQL, whether it is a `--` comment). A `--` comment is one line; a `/* */` comment gives each of its lines. Text inside quotes
    ('...', "...", `...`) is not a comment."""
    found: list[tuple[int, str, bool, bool]] = []
    i, line, leading, n = 0, 1, True, len(sql)
    while i < n:
        ch = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            found.append((line, sql[i:end], leading, True))
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            for k, text in enumerate(sql[i:end].split("\n")):
                found.append((line + k, text, leading, False))
            line += sql.count("\n", i, end)
            i = end
        elif ch in "'\"`":
            leading = False
            j = i + 1
            while j < n and sql[j] != ch:
                j += 2 if sql[j] == "\\" and ch != "`" else 1
            line += sql.count("\n", i, min(j + 1, n))
            i = j + 1
        else:
            if ch == "\n":
                line += 1
            elif not ch.isspace() and ch != "\ufeff":
                leading = False
            i += 1
    return found


def expectations(sql: str) -> tuple[Rule, ...]:
    """The `-- expect: RULE` lines of the SQL's leading comments (line and block comments before the SELECT).

    A comment anywhere that looks meant as an expectation but is not one of those lines (a misspelling, a
    block comment, one after the SELECT starts) is an error naming its line: never a rule silently not checked.
    """
    found = []
    for number, text, leading, line_comment in comments(sql):
        match = EXPECT.match(text) if line_comment else None
        if match and leading:
            found.append(parse_rule(match["rule"]))
        elif match:
            raise QualityError(
                f"line {number}: {text.strip()!r} comes after the SQL starts, where no expectation is read; {HOW}"
            )
        elif LOOSE_EXPECT.match(text):
            raise QualityError(f"line {number}: {text.strip()!r} is not read as an expectation; {HOW}")
    return tuple(found)


def bronze_rules(primary_key: list[str], quality: QualityRules) -> list[Rule]:
    """A dataset config's rules (`primary_key` and `quality`), in the order bronze applies them."""
    rules = [Rule("primary_key", tuple(primary_key))] if primary_key else []
    rules += [Rule("not_null", (c,)) for c in quality.not_null]
    rules += [
        Rule("accepted_values", (c,), values=tuple(_text(v) for v in values))
        for c, values in quality.accepted_values.items()
    ]
    rules += [Rule("unique", (c,)) for c in quality.unique]
    return rules


def row_problems(rules: list[Rule], types: dict[str, Any] | None = None) -> list[tuple[Column, Column]]:
    """(condition, reject reason) per rule a row breaks by itself (nulls, values); uniqueness needs the others.

    `types`: the columns' Spark types. A number column's accepted values are compared as numbers (`1.0` accepts
    1, `1.5` accepts a decimal 1.50); any other column's as its text."""
    from pyspark.sql import functions as F

    problems = []
    for rule in rules:
        if rule.kind == "primary_key":
            problems += [(F.col(c).isNull(), F.lit(f"{c}: primary key is null")) for c in rule.columns]
        elif rule.kind == "not_null":
            problems += [(F.col(c).isNull(), F.lit(f"{c}: null (not_null rule)")) for c in rule.columns]
        elif rule.kind == "accepted_values":
            column = rule.columns[0]
            allowed = _accepted(column, rule.values, (types or {}).get(column))
            problems.append((F.col(column).isNotNull() & ~allowed, F.lit(f"{column}: not an accepted value")))
    return problems


def _accepted(column: str, values: tuple[str, ...], column_type: Any) -> Column:
    """Whether a value is one of `values`: its text is one, or in a number column it equals one as a number."""
    from pyspark.sql import functions as F

    allowed = F.col(column).cast("string").isin(list(values))
    numbers = _numbers(values, column_type)
    return allowed | F.col(column).isin(numbers) if numbers else allowed


def _numbers(values: tuple[str, ...], column_type: Any) -> list[Any]:
    """The accepted values that are numbers, for a number column: floats for a double, else exact decimals."""
    from decimal import Decimal, InvalidOperation

    from pyspark.sql.types import DoubleType, FloatType, NumericType

    if not isinstance(column_type, NumericType):
        return []
    found: list[Any] = []
    for text in values:
        try:
            number = Decimal(text)
        except InvalidOperation:
            continue
        if not number.is_finite():
            continue
        if isinstance(column_type, DoubleType | FloatType):
            found.append(float(number))
            continue
        sign, digits, exponent = number.as_tuple()
        scale = max(0, -int(exponent))
        if max(len(digits) + max(0, int(exponent)), scale) <= 38:  # past 38 digits no column value equals it
            found.append(number)
    return found


def table_failures(df: DataFrame, rules: tuple[Rule, ...], rows: int) -> list[str]:
    """The rules a whole result breaks, each with what was found (a gold model's expectations)."""
    from pyspark.sql import functions as F

    failed = []
    for rule in rules:
        if rule.kind == "row_count":
            ok = {">": rows > rule.value, ">=": rows >= rule.value, "=": rows == rule.value,
                  "<": rows < rule.value, "<=": rows <= rule.value}[rule.op]  # fmt: skip
            if not ok:
                failed.append(f"{rule} (found {rows})")
        elif rule.kind == "not_null":
            nulls = df.filter(" OR ".join(f"`{c}` IS NULL" for c in rule.columns)).count()
            if nulls:
                failed.append(f"{rule} ({nulls} rows with nulls)")
        elif rule.kind == "accepted_values":
            name = rule.columns[0]
            allowed = _accepted(name, rule.values, {f.name: f.dataType for f in df.schema.fields}.get(name))
            other = df.filter(F.col(name).isNotNull() & ~allowed).count()
            if other:
                failed.append(f"{rule} ({other} rows with other values)")
        else:  # unique, primary_key
            if rule.kind == "primary_key":
                nulls = df.filter(" OR ".join(f"`{c}` IS NULL" for c in rule.columns)).count()
                if nulls:
                    failed.append(f"{rule} ({nulls} rows with nulls)")
            # unique(a, b) holds over the rows where every part is set, as bronze's check: a NULL is no value
            # that repeats (primary_key reports its nulls above, and counts their rows as it always has)
            keyed = df if rule.kind == "primary_key" else df.filter(
                " AND ".join(f"`{c}` IS NOT NULL" for c in rule.columns)
            )
            # counted under a name no model column has (a column `count` would make F.col("count") ambiguous)
            repeated = (
                keyed.groupBy(*[F.col(f"`{c}`") for c in rule.columns])
                .agg(F.count(F.lit(1)).alias(ROWS_COLUMN))
                .filter(F.col(ROWS_COLUMN) > 1)
                .count()
            )
            if repeated:
                failed.append(f"{rule} ({repeated} repeated values)")
    return failed
