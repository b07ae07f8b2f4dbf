"""`dw query`: the Athena (Trino) SQL one would run on AWS, run on the local lake with DuckDB.

The local lake mirrors the bucket (DESIGN section 5, `dwlib.naming`): `bronze/{table}/*.parquet`
is the catalog table `{database_prefix}_bronze.{table}` and `gold/{dataset}/{model}/*.parquet` is
`{database_prefix}_gold.{model}`. `connect` gives an in-memory DuckDB with one schema per Glue
database and one view per table, so the same `database.table` names resolve.

`translate` turns Trino SQL into DuckDB SQL with sqlglot (its Trino parser and DuckDB
generator), then corrects, node by node over the type-annotated AST, every construct whose DuckDB
namesake means something else (`_fix`, `_fix_trino`, `_fix_cast`; each branch names the Trino
behaviour it keeps). Trino functions DuckDB lacks or means otherwise are DuckDB macros defined on
every connection (`MACROS`). Where DuckDB cannot give Athena's answer exactly, the construct is
refused with `unsupported` ("... is not supported locally"), and where Athena itself raises an
error (division by zero, '1' = 1, a subscript past the end), so does `dw query`: never a silent
difference. Several fixes depend on the type of an argument (a DATE stays a DATE in Trino's
`date_add`, an integer division stays integral), so the query is first qualified and
type-annotated with the lake's schema when one is given. The cases, each from Trino's docs or
tests, are in tests/cli/trino_corpus.yaml.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, ParseError, TokenError, UnsupportedError
from sqlglot.expressions.builders import apply_index_offset
from sqlglot.optimizer.annotate_types import TypeAnnotator, annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import ensure_schema
from sqlglot.tokens import TokenType

from dw import iceberg_read
from dwlib.naming import LAYERS, Naming

READ_DIALECT = "athena"  # Athena engine v3 is Trino; sqlglot's "athena" parses its DML as Trino
WRITE_DIALECT = "duckdb"
AWS_CATALOG = "awsdatacatalog"  # Athena's name for the Glue catalog: `awsdatacatalog.db.table`
RUN_HINT = "run `dw run DATASET` to create one"

DType = exp.DataType.Type
INTEGER_TYPES = (DType.TINYINT, DType.SMALLINT, DType.INT, DType.BIGINT)
INTEGER_PRECISION = {DType.TINYINT: 3, DType.SMALLINT: 5, DType.INT: 10, DType.BIGINT: 19}
INTEGER_OF_PRECISION = {precision: kind for kind, precision in INTEGER_PRECISION.items()}
INTEGER_PRECISION_BITS = {DType.TINYINT: 8, DType.SMALLINT: 16, DType.INT: 32, DType.BIGINT: 64}
DATE_UNITS = {"DAY", "WEEK", "MONTH", "QUARTER", "YEAR"}
# Characters Trino's trim/ltrim/rtrim remove (Java's Character.isWhitespace: the Unicode space, line and paragraph
# separators but the no-break spaces), where DuckDB removes spaces only.
WHITESPACE = (
    " \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2008\u2009\u200a"
    "\u2028\u2029\u205f\u3000"
)

MALFORMED_JSON = (
    "'reading malformed JSON is not supported locally: Athena reads it up to the value it looks for, DuckDB "
    "not at all; run this query on Athena'"
)
# Defined on every connection: Trino functions DuckDB lacks or means otherwise, written so each
# gives Trino's value (the docstring of the `_fix` branch that emits it names the behaviour).
# A macro that raises Trino's error has a `_try` twin returning NULL instead, for use inside
# TRY(...), where DuckDB refuses error(). An error TRY must not turn into NULL (a refusal of dw's, or one of
# Trino's errors its TRY lets through, TryFunction#propagateIfUnhandled) is the text of the macro's `_refused`
# twin (NULL: none), which the macro raises first, and which a TRY around it raises outside (`_guard_try`).
MACROS = {
    # decimal / decimal: exact, rounded half up, Division by zero raised (a NULL operand: NULL, as in Trino)
    "dw_div_half_up(n, d)": "CASE WHEN n IS NULL OR d IS NULL THEN NULL WHEN d = 0 THEN error('Division by zero') "
    "ELSE (CASE WHEN (n < 0) <> (d < 0) THEN -1 ELSE 1 END) * ((2 * abs(n) + abs(d)) // (2 * abs(d))) END",
    # integer / integer truncates and 1 / 0 raises (DuckDB: NULL); NULL / 0 is NULL
    "dw_idiv(a, b)": "CASE WHEN a IS NULL OR b IS NULL THEN NULL WHEN b = 0 THEN error('Division by zero') ELSE a // b END",
    # integer and decimal % raise on zero (DuckDB: NULL); NULL % 0 is NULL
    "dw_mod(a, b)": "CASE WHEN a IS NULL OR b IS NULL THEN NULL WHEN b = 0 THEN error('Division by zero') ELSE a % b END",
    # strpos(s, t, n): the n-th match, counted from the end when n < 0
    "dw_strpos(s, t, n)": "CASE WHEN s IS NULL OR t IS NULL OR n IS NULL THEN NULL "
    "WHEN n = 0 THEN error('''instance'' must be a positive or negative number.') "
    "ELSE coalesce(list_filter(range(1, length(s) + 1), lambda i: substr(s, i, length(t)) = t)[n], 0) END::BIGINT",
    # split(s, d, limit): the last element keeps the rest of the string; an empty delimiter raises
    "dw_split2(s, d)": "CASE WHEN d = '' THEN error('The delimiter may not be the empty string') "
    "ELSE string_split(s, d) END",
    "dw_split(s, d, n)": "CASE WHEN n <= 0 THEN error('Limit must be positive') "
    "WHEN d = '' THEN error('The delimiter may not be the empty string') "
    "WHEN len(string_split(s, d)) <= n THEN string_split(s, d) "
    "ELSE list_concat(string_split(s, d)[1:n - 1], [array_to_string(string_split(s, d)[n:], d)]) END",
    # lpad / rpad: a negative length and an empty padding raise (DuckDB: '' and the string unpadded)
    "dw_pad(s, n, p, to_left)": "CASE WHEN s IS NULL OR n IS NULL OR p IS NULL THEN NULL "
    "WHEN n < 0 OR n > 2147483647 THEN error('Target length must be in the range [0..2147483647]') "
    "WHEN p = '' THEN error('Padding string must not be empty') WHEN to_left THEN lpad(s, n, p) ELSE rpad(s, n, p) END",
    # levenshtein_distance counts characters; DuckDB's counts UTF-8 bytes, the same for ASCII only
    "dw_levenshtein_refused(a, b)": "CASE WHEN NOT regexp_full_match(a || b, '[\\x00-\\x7F]*') THEN "
    "'levenshtein_distance of text beyond ASCII is not supported locally: DuckDB counts its bytes, "
    "Athena its characters; run this query on Athena' END",
    "dw_levenshtein(a, b)": "CASE WHEN dw_levenshtein_refused(a, b) IS NOT NULL THEN error(dw_levenshtein_refused(a, b)) "
    "ELSE CAST(levenshtein(a, b) AS BIGINT) END",
    # substr: start 0 or before the first character is '' (DuckDB: from the start)
    "dw_substr(s, st)": "CASE WHEN s IS NULL OR st IS NULL THEN NULL WHEN st = 0 THEN '' "
    "WHEN st > 0 THEN substring(s, st) WHEN length(s) + st < 0 THEN '' ELSE substring(s, length(s) + st + 1) END",
    "dw_substr3(s, st, n)": "CASE WHEN s IS NULL OR st IS NULL OR n IS NULL THEN NULL WHEN st = 0 OR n <= 0 THEN '' "
    "WHEN st > 0 THEN substring(s, st, n) WHEN length(s) + st < 0 THEN '' ELSE substring(s, length(s) + st + 1, n) END",
    # slice(a, start, length): a length, not an end; negative starts count from the end
    "dw_slice(a, st, n)": "CASE WHEN a IS NULL OR st IS NULL OR n IS NULL THEN NULL "
    "WHEN st = 0 THEN error('SQL array indices start at 1') "
    "WHEN n < 0 THEN error('length must be greater than or equal to 0') "
    "WHEN st > 0 THEN a[st:st + n - 1] WHEN len(a) + st < 0 THEN a[1:0] "
    "ELSE a[len(a) + st + 1:len(a) + st + n] END",
    # sequence counts down when start > stop (DuckDB: empty)
    "dw_sequence(a, b)": "CASE WHEN a <= b THEN generate_series(a, b) ELSE generate_series(a, b, -1) END",
    "dw_sequence3(a, b, st)": "CASE WHEN st = 0 THEN error('step must not be zero') "
    "WHEN (st > 0 AND a > b) OR (st < 0 AND a < b) THEN error('sequence stop value should be greater than or "
    "equal to start value if step is greater than zero otherwise stop should be less than or equal to start') "
    "ELSE generate_series(a, b, st) END",
    # sequence of dates: dates, a day apart
    "dw_date_sequence(a, b)": "CAST(CASE WHEN a <= b THEN generate_series(CAST(a AS TIMESTAMP), CAST(b AS TIMESTAMP), "
    "INTERVAL 1 DAY) ELSE generate_series(CAST(a AS TIMESTAMP), CAST(b AS TIMESTAMP), to_days(-1)) END AS DATE[])",
    # repeat(e, n) is an array of n e's (DuckDB: a repeated string)
    "dw_repeat(e, n)": "CASE WHEN n < 0 THEN error('count argument of repeat function must be greater than or equal "
    "to 0') WHEN n > 10000 THEN error('count argument of repeat function must be less than or equal to 10000') "
    "ELSE list_transform(range(n), lambda i: e) END",
    # array_distinct keeps first-occurrence order and one NULL
    "dw_array_distinct(a)": "list_filter(a, lambda v, i: list_position(a, v) = i)",
    # array_position: 0 without a match (DuckDB: NULL), a NULL element never matches, bigint
    "dw_array_position(a, e)": "CASE WHEN a IS NULL OR e IS NULL THEN NULL "
    "ELSE CAST(coalesce(list_position(a, e), 0) AS BIGINT) END",
    # ... of doubles: NaN equals nothing (DoubleType's EQUAL is Java's ==), DuckDB's NaN equals NaN
    "dw_array_position_float(a, e)": "CASE WHEN a IS NULL OR e IS NULL THEN NULL WHEN isnan(e) THEN CAST(0 AS BIGINT) "
    "ELSE dw_array_position(a, e) END",
    # ... of arrays: each element in turn, an equality NULL elements leave unknown raises (ArrayPositionFunction).
    # (A lambda inside a macro that calls one with lambdas names its parameters dw_*: DuckDB's macros do not rename
    # them, so the inner lambda's i would shadow the outer one.)
    "dw_array_position_nested_at(a, e)": "list_filter(range(1, len(a) + 1), "
    "lambda dw_i: a[dw_i] IS NOT NULL AND dw_array_eq(a[dw_i], e) IS DISTINCT FROM false)[1]",
    "dw_array_position_nested_refused(a, e)": "CASE WHEN e IS NOT NULL "
    "AND dw_array_eq(a[dw_array_position_nested_at(a, e)], e) IS NULL AND dw_array_position_nested_at(a, e) IS NOT NULL "
    "THEN 'array_position does not support arrays with elements that are null or contain null' END",
    "dw_array_position_nested(a, e)": "CASE WHEN dw_array_position_nested_refused(a, e) IS NOT NULL "
    "THEN error(dw_array_position_nested_refused(a, e)) WHEN a IS NULL OR e IS NULL THEN NULL "
    "ELSE CAST(coalesce(dw_array_position_nested_at(a, e), 0) AS BIGINT) END",
    # array_remove keeps NULL elements (DuckDB's x <> e drops them)
    "dw_array_remove(a, e)": "CASE WHEN a IS NULL OR e IS NULL THEN NULL "
    "ELSE list_filter(a, lambda x: x IS NULL OR x <> e) END",
    "dw_array_remove_float(a, e)": "CASE WHEN a IS NULL OR e IS NULL THEN NULL "
    "ELSE list_filter(a, lambda x: x IS NULL OR isnan(x) OR x <> e) END",
    # array_except / array_intersect: distinct elements in first-occurrence order, NULL a value like
    # any other (Trino's IDENTICAL); array_intersect keeps the order of the longer array (the first
    # when both are as long): list_position finds a NULL, which list_contains does not
    "dw_array_except(a, b)": "CASE WHEN a IS NULL OR b IS NULL THEN NULL "
    "ELSE list_filter(dw_array_distinct(a), lambda v: list_position(b, v) IS NULL) END",
    "dw_array_intersect2(l, r)": "list_filter(dw_array_distinct(l), lambda v: list_position(r, v) IS NOT NULL)",
    "dw_array_intersect(a, b)": "CASE WHEN a IS NULL OR b IS NULL THEN NULL WHEN len(a) < len(b) "
    "THEN dw_array_intersect2(b, a) ELSE dw_array_intersect2(a, b) END",
    # replace with an empty search inserts r around every character
    "dw_replace(s, t, r)": "CASE WHEN t = '' AND s = '' THEN r WHEN t = '' "
    "THEN r || array_to_string(list_transform(string_split(s, ''), lambda c: c || r), '') ELSE replace(s, t, r) END",
    # json_extract_scalar of an object or array is NULL
    # Trino reads JSON as a stream (Jackson): a document whose first token is no JSON is NULL to the json_*
    # functions; one malformed further on is read up to the value sought, which DuckDB cannot: refused. dw_json(j)
    # is j when valid, else NULL (so that DuckDB, folding constants, never parses it)
    "dw_json(j)": "CASE WHEN json_valid(j) THEN j END",
    "dw_json_junk(j)": "NOT json_valid(j) AND NOT regexp_matches(CAST(j AS VARCHAR), "
    "'^[ \\t\\n\\r]*([{\\[\"]|-?[0-9]|true|false|null)')",
    # json_extract_scalar of a number is its text as written (Jackson's getText): DuckDB writes it anew (1.50 as
    # 1.5, 1e2 as 100.0); a document with such numbers is refused
    "dw_json_refused(j)": f"CASE WHEN NOT dw_json_junk(j) AND NOT json_valid(j) THEN {MALFORMED_JSON} END",
    "dw_json_scalar_refused(j, p)": "coalesce(dw_json_refused(j), CASE WHEN json_type(dw_json(j), p) = 'DOUBLE' AND "
    "regexp_matches(CAST(j AS VARCHAR), '[.][0-9]*[0-9]0([^0-9]|$)|[0-9][eE]|[0-9]{16}') THEN "
    "'json_extract_scalar of a JSON number written with trailing zeros, an exponent or 16 digits is not supported "
    "locally: Athena returns its text as written, DuckDB writes it anew (1.50 as 1.5); run this query on Athena' END)",
    "dw_json_scalar(j, p)": "CASE WHEN dw_json_scalar_refused(j, p) IS NOT NULL THEN error(dw_json_scalar_refused(j, p)) "
    "WHEN j IS NULL OR dw_json_junk(j) THEN NULL "
    "WHEN json_type(dw_json(j), p) IN ('OBJECT', 'ARRAY') THEN NULL "
    "ELSE json_extract_string(dw_json(j), p) END",
    # json_array_length is NULL for anything but an array (DuckDB: 0 for an object)
    "dw_json_array_length_refused(j)": "dw_json_refused(j)",
    "dw_json_array_length(j)": "CASE WHEN dw_json_refused(j) IS NOT NULL THEN error(dw_json_refused(j)) "
    "WHEN j IS NULL OR dw_json_junk(j) THEN NULL "
    "WHEN json_type(dw_json(j)) = 'ARRAY' THEN CAST(json_array_length(dw_json(j)) AS BIGINT) END",
    # a[i] past the end raises; element_at gives NULL
    "dw_subscript(a, i)": "CASE WHEN a IS NULL OR i IS NULL THEN NULL "
    "WHEN i = 0 THEN error('SQL array indices start at 1') "
    "WHEN i < 0 THEN error('Array subscript is negative: ' || i) "
    "WHEN i > len(a) THEN error('Array subscript must be less than or equal to array length: ' || i || ' > ' || len(a)) "
    "ELSE a[i] END",
    # m[k] of a missing key raises
    "dw_map_key(m, k)": "CASE WHEN m IS NULL OR k IS NULL THEN NULL "
    "WHEN NOT list_contains(map_keys(m), k) THEN error('Key not present in map: ' || k) ELSE m[k] END",
    "dw_element_at(a, i)": "CASE WHEN i = 0 THEN error('SQL array indices start at 1') ELSE a[i] END",
    # CAST(double AS varchar): Java DecimalFormat("0.0###################E0"), 3.77E1, 2.0E1; 0E0
    "dw_dbl_sci4(i, f, e0)": "CASE WHEN rtrim(ltrim(i || f, '0'), '0') = '' THEN '0E0' ELSE "
    "left(rtrim(ltrim(i || f, '0'), '0'), 1) || CASE WHEN length(rtrim(ltrim(i || f, '0'), '0')) > 1 "
    "THEN '.' || rtrim(ltrim(i || f, '0'), '0')[2:] ELSE '.0' END || 'E' || "
    "(e0 + length(i) - 1 - (length(i || f) - length(ltrim(i || f, '0')))) END",
    "dw_dbl_sci3(m, e0)": "dw_dbl_sci4(split_part(m, '.', 1), split_part(m, '.', 2), e0)",
    "dw_dbl_sci2(u)": "dw_dbl_sci3(split_part(u, 'e', 1), "
    "CASE WHEN contains(u, 'e') THEN CAST(split_part(u, 'e', 2) AS INTEGER) ELSE 0 END)",
    "dw_double_varchar(x)": "CASE WHEN isnan(x) THEN 'NaN' WHEN isinf(x) AND x > 0 THEN 'Infinity' "
    "WHEN isinf(x) THEN '-Infinity' ELSE (CASE WHEN starts_with(CAST(x AS VARCHAR), '-') THEN '-' ELSE '' END) "
    "|| dw_dbl_sci2(ltrim(CAST(x AS VARCHAR), '-')) END",
    # CAST(json AS varchar): a string's text, a float as a double writes, an integer or boolean as written,
    # NULL for null; an object or array raises
    "dw_json_varchar(j)": "CASE WHEN j IS NULL OR json_type(j) = 'NULL' THEN NULL "
    "WHEN json_type(j) = 'VARCHAR' THEN json_extract_string(j, '$') "
    "WHEN json_type(j) = 'DOUBLE' THEN dw_double_varchar(CAST(j AS DOUBLE)) "
    "WHEN json_type(j) IN ('BIGINT', 'UBIGINT', 'BOOLEAN') THEN CAST(j AS VARCHAR) "
    "ELSE error('Cannot cast ''' || CAST(j AS VARCHAR) || ''' to VARCHAR') END",
    # the url_extract_* family (java.net.URI's parts)
    "url_extract_host(u)": "regexp_extract(u, '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?(\\[[^\\]]*\\]|[^:/?#]*)', 1)",
    "url_extract_protocol(u)": "nullif(regexp_extract(u, '^([A-Za-z][A-Za-z0-9+.-]*):', 1), '')",
    "url_extract_path(u)": "regexp_extract(u, '^(?:[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*)?([^?#]*)', 1)",
    "url_extract_query(u)": "CASE WHEN contains(u, '?') THEN regexp_extract(u, '\\?([^#]*)', 1) END",
    "url_extract_fragment(u)": "CASE WHEN contains(u, '#') THEN regexp_extract(u, '#(.*)$', 1) END",
    # the first value of a query parameter, '' when it has no '='
    "url_extract_parameter(u, name)": "list_filter(list_transform(list_filter(string_split("
    "regexp_extract(u, '\\?([^#]*)', 1), '&'), lambda p: p <> ''), "
    "lambda p: {'k': split_part(p, '=', 1), 'v': CASE WHEN contains(p, '=') THEN p[strpos(p, '=') + 1:] ELSE '' END}), "
    "lambda kv: kv.k = name)[1].v::VARCHAR",
    # NULL when nothing matches and either array has a NULL
    "arrays_overlap(a, b)": "CASE WHEN a IS NULL OR b IS NULL THEN NULL "
    "WHEN len(list_intersect(list_filter(a, lambda x: x IS NOT NULL), list_filter(b, lambda x: x IS NOT NULL))) > 0 "
    "THEN true WHEN list_contains(list_transform(a, lambda x: x IS NULL), true) "
    "OR list_contains(list_transform(b, lambda x: x IS NULL), true) THEN NULL ELSE false END",
    # 1-based position of the first match, -1 without one
    "regexp_position(s, p)": "CASE WHEN s IS NULL OR p IS NULL THEN NULL::INTEGER WHEN regexp_matches(s, p) "
    "THEN CAST(length(regexp_split_to_array(s, p)[1]) + 1 AS INTEGER) ELSE -1 END",
    # split_to_map (SplitToMapFunction): the entries up to the last delimiter, each holding the key-value delimiter
    # exactly once (an empty entry too); the first entry that does not, or whose key came before, raises
    "dw_stm_entries(s, e)": "CASE WHEN s = '' THEN [] WHEN ends_with(s, e) "
    "THEN list_slice(string_split(s, e), 1, len(string_split(s, e)) - 1) ELSE string_split(s, e) END",
    "dw_stm_bad(p, kv)": "NOT (strpos(p, kv) > 0 AND strpos(p[strpos(p, kv) + length(kv):], kv) = 0)",
    "dw_stm_key(p, kv)": "left(p, strpos(p, kv) - 1)",
    "dw_stm_first_bad(l, kv)": "list_filter(range(1, len(l) + 1), lambda dw_q: dw_stm_bad(l[dw_q], kv) "
    "OR list_contains(list_transform(list_slice(l, 1, dw_q - 1), lambda dw_r: dw_stm_key(dw_r, kv)), "
    "dw_stm_key(l[dw_q], kv)))[1]",
    "dw_stm_message(l, kv)": "CASE WHEN dw_stm_bad(l[dw_stm_first_bad(l, kv)], kv) THEN 'Key-value delimiter must "
    "appear exactly once in each entry. Bad input: ''' || l[dw_stm_first_bad(l, kv)] || '''' "
    "ELSE 'Duplicate keys (' || dw_stm_key(l[dw_stm_first_bad(l, kv)], kv) || ') are not allowed' END",
    "dw_stm(l, kv)": "CASE WHEN dw_stm_first_bad(l, kv) IS NOT NULL THEN error(dw_stm_message(l, kv)) "
    "ELSE map_from_entries(list_transform(l, "
    "lambda dw_p: {'k': dw_stm_key(dw_p, kv), 'v': dw_p[strpos(dw_p, kv) + length(kv):]})) END",
    "split_to_map(s, e, kv)": "CASE WHEN s IS NULL OR e IS NULL OR kv IS NULL THEN NULL "
    "WHEN e = '' THEN error('entryDelimiter is empty') WHEN kv = '' THEN error('keyValueDelimiter is empty') "
    "WHEN e = kv THEN error('entryDelimiter and keyValueDelimiter must not be the same') "
    "ELSE dw_stm(dw_stm_entries(s, e), kv) END",
    # members of an object, elements of an array, 0 for a scalar
    "dw_json_size_refused(j, p)": "dw_json_refused(j)",
    "json_size(j, p)": "CASE WHEN dw_json_refused(j) IS NOT NULL THEN error(dw_json_refused(j)) "
    "WHEN j IS NULL OR dw_json_junk(j) THEN NULL "
    "WHEN json_type(dw_json(j), p) = 'OBJECT' THEN json_array_length(json_keys(dw_json(j), p)) "
    "WHEN json_type(dw_json(j), p) = 'ARRAY' THEN json_array_length(dw_json(j), p) "
    "WHEN json_type(dw_json(j), p) IS NULL THEN NULL ELSE 0 END",
    # Athena's session zone
    "current_timezone()": "'UTC'",
    # Trino's nan() and infinity() (MathFunctions#nan, #infinity)
    "nan()": "CAST('NaN' AS DOUBLE)",
    "infinity()": "CAST('Infinity' AS DOUBLE)",
    "e()": "exp(1)",
    # upper: Java's Character.toUpperCase leaves ß (it has no one-character capital); DuckDB writes ẞ
    "dw_upper(s)": "array_to_string(list_transform(string_split(s, 'ß'), lambda dw_u: upper(dw_u)), 'ß')",
    # url_encode / url_decode: Java's URLEncoder writes a space as +, leaves * and encodes ~ (DuckDB: %20, %2A, ~);
    # URLDecoder reads + as a space
    "dw_url_encode(s)": "replace(replace(replace(url_encode(s), '%20', '+'), '%2A', '*'), '~', '%7E')",
    "dw_url_decode(s)": "url_decode(replace(s, '+', ' '))",
    # url_extract_parameter's value URL-decoded, as UrlFunctions#urlExtractParameter does (+ is a space)
    "dw_url_extract_parameter(u, name)": "dw_url_decode(url_extract_parameter(u, name))",
    # hamming_distance counts differing characters of strings of one length (StringFunctions#hammingDistance)
    "hamming_distance(a, b)": "CASE WHEN length(a) <> length(b) THEN error('The input strings to hamming_distance "
    "function must have the same length') ELSE CAST(len(list_filter(range(1, length(a) + 1), "
    "lambda dw_h: substr(a, dw_h, 1) <> substr(b, dw_h, 1))) AS BIGINT) END",
    # to_base / from_base: Java's Long.toString(x, radix) and Long.parseLong(s, radix) (MathFunctions#toBase,
    # #fromBase): lower-case digits, a sign; DuckDB's to_base writes upper case and takes no negative number
    "dw_to_base_refused(x, r)": "CASE WHEN x = -9223372036854775808 AND r BETWEEN 2 AND 36 THEN 'to_base of "
    "-9223372036854775808 is not supported locally: DuckDB''s to_base takes no number past the bigint range; "
    "run this query on Athena' END",
    "dw_to_base(x, r)": "CASE WHEN dw_to_base_refused(x, r) IS NOT NULL THEN error(dw_to_base_refused(x, r)) "
    "WHEN x IS NULL OR r IS NULL THEN NULL WHEN r < 2 OR r > 36 THEN error('Radix must be between 2 and 36') "
    "WHEN x < 0 THEN '-' || lower(to_base(CAST(-x AS BIGINT), CAST(r AS INTEGER))) "
    "ELSE lower(to_base(CAST(x AS BIGINT), CAST(r AS INTEGER))) END",
    "dw_base_digits(s)": "list_transform(string_split(lower(ltrim(s, '+-')), ''), "
    "lambda c: CASE WHEN c BETWEEN '0' AND '9' THEN ascii(c) - 48 WHEN c BETWEEN 'a' AND 'z' THEN ascii(c) - 87 END)",
    "dw_base_value(s, r)": "(CASE WHEN starts_with(s, '-') THEN -1 ELSE 1 END) * list_reduce(dw_base_digits(s), "
    "lambda acc, d: acc * r + d, CAST(0 AS HUGEINT))",
    "dw_from_base(s, r)": "CASE WHEN s IS NULL OR r IS NULL THEN NULL "
    "WHEN r < 2 OR r > 36 THEN error('Radix must be between 2 and 36') "
    "WHEN NOT regexp_full_match(s, '[+-]?[0-9A-Za-z]{1,64}') "
    "OR list_contains(list_transform(dw_base_digits(s), lambda d: d >= r), true) "
    "OR NOT dw_base_value(s, r) BETWEEN -9223372036854775808 AND 9223372036854775807 "
    "THEN error('Not a valid base-' || r || ' number: ' || s) ELSE CAST(dw_base_value(s, r) AS BIGINT) END",
    "is_infinite(x)": "isinf(CAST(x AS DOUBLE))",
    "is_finite(x)": "isfinite(CAST(x AS DOUBLE))",
    # array_max / array_min are NULL when an element is
    "dw_array_max(a)": "CASE WHEN list_contains(list_transform(a, lambda x: x IS NULL), true) THEN NULL ELSE list_max(a) END",
    # ... and of doubles or reals skips NaN unless all are (ArrayMaxFunction: NaN ranks first); DuckDB's ranks last
    "dw_array_max_float(a)": "CASE WHEN list_contains(list_transform(a, lambda x: x IS NULL), true) THEN NULL "
    "WHEN len(list_filter(a, lambda x: NOT isnan(x))) > 0 THEN list_max(list_filter(a, lambda x: NOT isnan(x))) "
    "ELSE list_max(a) END",
    "dw_array_min(a)": "CASE WHEN list_contains(list_transform(a, lambda x: x IS NULL), true) THEN NULL ELSE list_min(a) END",
    # contains is NULL when nothing matches and an element is NULL
    "dw_contains_float(a, e)": "CASE WHEN a IS NULL THEN NULL WHEN isnan(e) THEN (CASE WHEN list_contains("
    "list_transform(a, lambda x: x IS NULL), true) THEN NULL ELSE false END) ELSE dw_contains(a, e) END",
    "dw_contains(a, e)": "CASE WHEN list_contains(a, e) THEN true "
    "WHEN list_contains(list_transform(a, lambda x: x IS NULL), true) THEN NULL ELSE list_contains(a, e) END",
    # CAST(varchar AS boolean) reads true/t/1 and false/f/0 only
    "dw_to_boolean(s)": "CASE WHEN s IS NULL THEN NULL WHEN lower(s) IN ('true', 't', '1') THEN true "
    "WHEN lower(s) IN ('false', 'f', '0') THEN false ELSE error('Cannot cast ''' || s || ''' to BOOLEAN') END",
    # sign(double / real) keeps the type: NaN and -0.0 stay (Java's Math.signum); DuckDB's is a tinyint, 0 for NaN
    "dw_sign_float(x)": "CASE WHEN x = 0 OR isnan(x) THEN x ELSE sign(x) END",
    # array = array: false when the lengths or two non-NULL elements differ, else NULL when an element is NULL
    # (Trino's ArrayType equalOperator; DuckDB's NULL equals NULL). The _nan twin: a NaN element equals nothing.
    "dw_array_eq(a, b)": "CASE WHEN a IS NULL OR b IS NULL THEN NULL WHEN len(a) <> len(b) THEN false "
    "WHEN len(list_filter(range(1, len(a) + 1), lambda i: a[i] IS NOT NULL AND b[i] IS NOT NULL AND a[i] <> b[i])) > 0 "
    "THEN false WHEN list_contains(list_transform(range(1, len(a) + 1), lambda i: a[i] IS NULL OR b[i] IS NULL), true) "
    "THEN NULL ELSE true END",
    "dw_array_eq_nan(a, b)": "CASE WHEN a IS NULL OR b IS NULL THEN NULL WHEN len(a) <> len(b) THEN false "
    "WHEN len(list_filter(range(1, len(a) + 1), lambda i: a[i] IS NOT NULL AND b[i] IS NOT NULL "
    "AND (a[i] <> b[i] OR isnan(a[i]) OR isnan(b[i])))) > 0 THEN false "
    "WHEN list_contains(list_transform(range(1, len(a) + 1), lambda i: a[i] IS NULL OR b[i] IS NULL), true) "
    "THEN NULL ELSE true END",
    # array < array: r (DuckDB's answer), unless a NULL element comes before the first difference, where Trino raises
    # (Trino's NOT_SUPPORTED, which its TRY lets through)
    "dw_array_order_refused(a, b)": "CASE WHEN list_contains(list_transform(list_filter(range(1, "
    "least(len(a), len(b)) + 1), lambda i: a[i] IS NULL OR b[i] IS NULL OR a[i] <> b[i])[1:1], "
    "lambda i: a[i] IS NULL OR b[i] IS NULL), true) THEN 'ARRAY comparison not supported for arrays with null elements' "
    "END",
    "dw_array_order(a, b, r)": "CASE WHEN dw_array_order_refused(a, b) IS NOT NULL THEN error(dw_array_order_refused(a, b)) "
    "ELSE r END",
    # array_sort of arrays: Trino's sort compares elements (a NULL one aside, last), and a comparison of two arrays
    # whose first difference is a NULL element raises; any sort must compare two such arrays (they agree up to the
    # NULL, so nothing can come between them): it raises if any pair does. DuckDB orders them.
    "dw_array_sort_refused(a)": "CASE WHEN len(list_filter(range(1, len(a) + 1), lambda dw_i: len(list_filter("
    "range(dw_i + 1, len(a) + 1), lambda dw_j: a[dw_i] IS NOT NULL AND a[dw_j] IS NOT NULL "
    "AND dw_array_order_refused(a[dw_i], a[dw_j]) IS NOT NULL)) > 0)) > 0 "
    "THEN 'ARRAY comparison not supported for arrays with null elements' END",
    "dw_array_sort(a)": "CASE WHEN dw_array_sort_refused(a) IS NOT NULL THEN error(dw_array_sort_refused(a)) "
    "ELSE list_sort(a) END",
    # array_sort(a, (x, y) -> ...): the comparator over every pair (m[i][j] = cmp(a[i], a[j])). Where it returns -1, 0
    # or 1, antisymmetric, and ranks the elements consistently (each a different number of elements before it, ties
    # kept in order), any stable sort (Trino's TimSort) gives the order of those ranks; two equal elements (two NULLs)
    # are a tie whatever it says of them, either order being the same array. Elsewhere Trino's answer or error
    # depends on which pairs its sort compares: refused
    "dw_cmp_valid(a, m)": "len(list_filter(range(1, len(m) + 1), lambda dw_i: len(list_filter(range(1, len(m) + 1), "
    "lambda dw_j: dw_i <> dw_j AND (m[dw_i][dw_j] IS NULL OR m[dw_i][dw_j] NOT IN (-1, 0, 1) "
    "OR (a[dw_i] IS DISTINCT FROM a[dw_j] AND m[dw_i][dw_j] <> -m[dw_j][dw_i])))) > 0)) = 0",
    "dw_cmp_ranks(a, m)": "list_transform(range(1, len(m) + 1), lambda dw_i: len(list_filter(range(1, len(m) + 1), "
    "lambda dw_j: dw_j <> dw_i AND ((a[dw_j] IS DISTINCT FROM a[dw_i] AND m[dw_j][dw_i] < 0) "
    "OR ((a[dw_j] IS NOT DISTINCT FROM a[dw_i] OR m[dw_j][dw_i] = 0) AND dw_j < dw_i)))))",
    "dw_sort_by_refused(a, m)": "CASE WHEN NOT dw_cmp_valid(a, m) OR list_sort(dw_cmp_ranks(a, m)) <> range(0, len(m)) "
    "THEN 'array_sort with a comparator that returns other than -1, 0 or 1 or ranks these elements inconsistently "
    "is not supported locally: which pairs Trino''s sort compares decides its answer or error; run this query on "
    "Athena' END",
    "dw_sort_by(a, m)": "CASE WHEN dw_sort_by_refused(a, m) IS NOT NULL THEN error(dw_sort_by_refused(a, m)) "
    "WHEN a IS NULL THEN NULL "
    "ELSE list_transform(range(0, len(a)), lambda dw_r: a[list_position(dw_cmp_ranks(a, m), dw_r)]) END",
    # array_min / array_max of arrays: Trino's loop (ArrayMinFunction#arrayMin): NULL at the first NULL element,
    # each element compared with the one kept so far, which raises as above. The position kept: 0 for NULL, -1 for
    # the error.
    "dw_array_extreme_at(a, lt)": "list_reduce(range(2, len(a) + 1), lambda dw_s, dw_i: CASE WHEN dw_s <= 0 THEN dw_s "
    "WHEN a[dw_i] IS NULL THEN 0 WHEN dw_array_order_refused(a[dw_i], a[dw_s]) IS NOT NULL THEN -1 "
    "WHEN (CASE WHEN lt THEN a[dw_i] < a[dw_s] ELSE a[dw_i] > a[dw_s] END) THEN dw_i ELSE dw_s END, "
    "CASE WHEN a[1] IS NULL THEN 0 ELSE 1 END)",
    "dw_array_min_nested_refused(a)": "CASE WHEN dw_array_extreme_at(a, true) = -1 "
    "THEN 'ARRAY comparison not supported for arrays with null elements' END",
    "dw_array_min_nested(a)": "CASE WHEN dw_array_min_nested_refused(a) IS NOT NULL "
    "THEN error(dw_array_min_nested_refused(a)) WHEN dw_array_extreme_at(a, true) > 0 "
    "THEN a[dw_array_extreme_at(a, true)] END",
    "dw_array_max_nested_refused(a)": "CASE WHEN dw_array_extreme_at(a, false) = -1 "
    "THEN 'ARRAY comparison not supported for arrays with null elements' END",
    "dw_array_max_nested(a)": "CASE WHEN dw_array_max_nested_refused(a) IS NOT NULL "
    "THEN error(dw_array_max_nested_refused(a)) WHEN dw_array_extreme_at(a, false) > 0 "
    "THEN a[dw_array_extreme_at(a, false)] END",
    # map = map: by key, whatever the order (DuckDB compares the entries in order); NULL values as in arrays
    "dw_map_eq(a, b)": "CASE WHEN a IS NULL OR b IS NULL THEN NULL WHEN cardinality(a) <> cardinality(b) THEN false "
    "WHEN len(list_filter(map_keys(a), lambda k: NOT list_contains(map_keys(b), k))) > 0 THEN false "
    "WHEN len(list_filter(map_keys(a), lambda k: a[k] IS NOT NULL AND b[k] IS NOT NULL AND a[k] <> b[k])) > 0 "
    "THEN false WHEN list_contains(list_transform(map_keys(a), lambda k: a[k] IS NULL OR b[k] IS NULL), true) "
    "THEN NULL ELSE true END",
    "dw_map_distinct(a, b)": "CASE WHEN a IS NULL OR b IS NULL THEN (a IS NULL) <> (b IS NULL) "
    "WHEN cardinality(a) <> cardinality(b) THEN true "
    "WHEN len(list_filter(map_keys(a), lambda k: NOT list_contains(map_keys(b), k))) > 0 THEN true "
    "ELSE len(list_filter(map_keys(a), lambda k: a[k] IS DISTINCT FROM b[k])) > 0 END",
    # a double comparison with NaN: only <> holds (Java's ==, <); DuckDB orders NaN above everything, equal to itself
    "dw_nan_compare(a, b, r, ne)": "CASE WHEN a IS NULL OR b IS NULL THEN NULL "
    "WHEN isnan(CAST(a AS DOUBLE)) OR isnan(CAST(b AS DOUBLE)) THEN ne ELSE r END",
    # sum of integers is a bigint, raising past its range (BigintOperators.add); DuckDB's HUGEINT goes on
    "dw_bigint_sum(s)": "CASE WHEN s IS NULL THEN NULL WHEN s BETWEEN -9223372036854775808 AND 9223372036854775807 "
    "THEN CAST(s AS BIGINT) ELSE error('bigint addition overflow: the sum ' || s || ' is past the bigint range') END",
    # cbrt: Java's Math.cbrt is exact for a cube (cbrt(27) = 3.0), DuckDB's is not (3.0000000000000004); other
    # cube roots may differ in the last digit: refused
    "dw_cbrt_refused(x)": "CASE WHEN NOT (isnan(CAST(x AS DOUBLE)) OR isinf(CAST(x AS DOUBLE))) "
    "AND round(cbrt(x)) * round(cbrt(x)) * round(cbrt(x)) <> x THEN 'cbrt of a number that is not a whole cube is not "
    "supported locally: DuckDB and Java round the last digit differently; run this query on Athena' END",
    "dw_cbrt(x)": "CASE WHEN dw_cbrt_refused(x) IS NOT NULL THEN error(dw_cbrt_refused(x)) WHEN x IS NULL THEN NULL "
    "WHEN isnan(CAST(x AS DOUBLE)) OR isinf(CAST(x AS DOUBLE)) THEN cbrt(x) ELSE round(cbrt(x)) END",
    # from_iso8601_date: a calendar date (2020-05-11, 2020-5, 2020), a week date (2020-W10, 2020-W10-3) or an
    # ordinal date (2020-123), as Joda's ISO date element parser reads them (DuckDB's CAST reads neither week nor
    # ordinal dates, and reads ' 2020-05-01 ', which Joda does not); anything else is refused
    "dw_iso_week1(y)": "CAST(make_date(y, 1, 4) - CAST(isodow(make_date(y, 1, 4)) - 1 AS INTEGER) AS DATE)",
    "dw_iso8601_date_or_null(s)": "CASE WHEN s IS NULL THEN NULL "
    "WHEN regexp_full_match(s, '[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}') THEN TRY_CAST(s AS DATE) "
    "WHEN regexp_full_match(s, '[0-9]{4}-[0-9]{1,2}') THEN TRY_CAST(s || '-01' AS DATE) "
    "WHEN regexp_full_match(s, '[0-9]{4}') THEN TRY_CAST(s || '-01-01' AS DATE) "
    "WHEN regexp_full_match(s, '[0-9]{4}-[0-9]{3}') AND TRY_CAST(s[6:] AS INTEGER) BETWEEN 1 "
    "AND dayofyear(make_date(TRY_CAST(s[1:4] AS INTEGER), 12, 31)) "
    "THEN CAST(make_date(TRY_CAST(s[1:4] AS INTEGER), 1, 1) + (TRY_CAST(s[6:] AS INTEGER) - 1) AS DATE) "
    "WHEN regexp_full_match(s, '[0-9]{4}-W[0-9]{2}(-[1-7])?') AND TRY_CAST(s[7:8] AS INTEGER) BETWEEN 1 AND 53 "
    "THEN CAST(dw_iso_week1(TRY_CAST(s[1:4] AS INTEGER)) + 7 * (TRY_CAST(s[7:8] AS INTEGER) - 1) "
    "+ coalesce(TRY_CAST(nullif(s[10:], '') AS INTEGER), 1) - 1 AS DATE) "
    "END",
    "dw_iso8601_date_refused(s)": "CASE WHEN dw_iso8601_date_or_null(s) IS NULL "
    "THEN 'from_iso8601_date of \"' || s || '\" is not supported locally: dw reads yyyy, yyyy-MM, "
    "yyyy-MM-dd, yyyy-Www, yyyy-Www-e and yyyy-DDD dates, Athena raises on other text or reads "
    "more forms; run this query on Athena' END",
    "dw_iso8601_date(s)": "CASE WHEN dw_iso8601_date_refused(s) IS NOT NULL THEN error(dw_iso8601_date_refused(s)) "
    "ELSE dw_iso8601_date_or_null(s) END",
    # round(integer, n < 0): half away from zero, in the argument's range (lo..hi, type t); DuckDB's wraps
    # around (round(9223372036854775807, -2) is negative there). A HUGEINT; the caller casts it back.
    "dw_round_int_in(x, r, lo, hi, t)": "CASE WHEN r BETWEEN lo AND hi THEN r "
    "WHEN t = 'bigint' THEN error('numerical overflow: ' || x) ELSE error('Out of range for ' || t || ': ' || r) END",
    "dw_round_int(x, n, lo, hi, t)": "CASE WHEN x IS NULL OR n IS NULL THEN NULL WHEN n >= 0 THEN x::HUGEINT "
    "WHEN n <= -19 THEN error('numerical overflow: ' || x) "
    "ELSE dw_round_int_in(x, (CASE WHEN x < 0 THEN -1 ELSE 1 END) * ((abs(x::HUGEINT) + CAST(pow(10, -n) AS HUGEINT) "
    "// 2) // CAST(pow(10, -n) AS HUGEINT)) * CAST(pow(10, -n) AS HUGEINT), lo, hi, t) END",
}
MACRO_ARITY = {
    sig.partition("(")[0]: len([a for a in sig.partition("(")[2].rstrip(")").split(",") if a.strip()])
    for sig in MACROS
    if not sig.startswith("dw_")
}
ERROR_CALL = re.compile(r"error\('(?:[^'\\]|\\.|'')*'(?:\s*\|\|\s*[^()]*?(?:\([^()]*\))?)*\)|error\(dw_\w+\([^()]*\)\)")


class _Pairs(list):
    """A JSON object's members in the order written, duplicates kept."""


# Jackson's escapes of the characters below 0x20 (CharTypes: the short ones, else \u00XX in upper case)
JACKSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _jackson_string(text: str) -> str:
    escaped = (JACKSON_ESCAPES.get(c) or (f"\\u{ord(c):04X}" if ord(c) < 0x20 else c) for c in text)
    return '"' + "".join(escaped) + '"'


def _jackson_value(value, sort: bool) -> str:
    if isinstance(value, _Pairs):
        members = list(value)
        if sort:  # read into a map (a key written twice keeps its last value), written in key order (String order)
            members = sorted(dict(members).items(), key=lambda kv: kv[0].encode("utf-16-be"))
        return "{" + ",".join(f"{_jackson_string(k)}:{_jackson_value(v, sort)}" for k, v in members) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_jackson_value(v, sort) for v in value) + "]"
    if isinstance(value, str):
        return _jackson_string(value)
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, float):  # a number past the double range is Infinity, written as a string (Jackson's default)
        return _java_double(value) if math.isfinite(value) else f'"{_java_double(value)}"'
    return str(value)


def json_text(text: str, sort: bool) -> str:
    """JSON text as Trino writes it with Jackson: json_parse and CAST(... AS JSON) read the value into a map and
    write it with the keys in order (JsonTypeUtil#jsonParse, SORTED_MAPPER); json_extract copies it as read
    (JsonExtract.JsonValueJsonExtractor, copyCurrentStructure). Both write no blanks, and each number with a
    fraction or exponent as the double Java writes (1.50 is 1.5, 1e20 is 1.0E20), an integer as written."""
    return _jackson_value(json.loads(text, object_pairs_hook=_Pairs, parse_constant=float), sort)


def _macro_sql() -> list[str]:
    """CREATE MACRO statements, with a `_try` twin for each that raises."""
    statements = []
    for signature, body in MACROS.items():
        statements.append(f"CREATE MACRO {signature} AS {body}")
        if "error(" in body:
            name, _, params = signature.partition("(")
            safe = ERROR_CALL.sub("NULL", body)
            for other in MACROS:
                other_name = other.partition("(")[0]
                if "error(" in MACROS[other]:
                    safe = re.sub(rf"\b{other_name}\(", f"{other_name}_try(", safe)
            statements.append(f"CREATE MACRO {name}_try({params} AS {safe}")
    return statements


class QueryError(Exception):
    """User-facing message, no traceback needed."""


@dataclass(frozen=True)
class TableInfo:
    database: str
    table: str
    path: Path
    files: int
    bytes: int
    # or "runs": the JSON lines of ops/runs/ (the run-history table); "iceberg"; "arrow" (an Iceberg
    # snapshot without rows); "metadata" (an Iceberg metadata table, "t$files", already in Trino's types)
    kind: str = "parquet"
    data: tuple[str, ...] = ()  # "iceberg": the data files of the snapshot read
    columns: tuple[tuple[str, str], ...] = ()  # "iceberg": the table's columns in order, with Iceberg types
    arrow: object = field(default=None, compare=False, repr=False)  # "arrow", "metadata": the rows

    @property
    def name(self) -> str:
        return f"{self.database}.{self.table}"


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple]


# ---------------------------------------------------------------- the local catalog


def _hidden(name: str) -> bool:
    return name.startswith(("_", "."))


def _folders(parent: Path) -> list[Path]:
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if p.is_dir() and not _hidden(p.name))


def _data_files(folder: Path) -> list[Path]:
    """Parquet files of a table folder, in subfolders too (Hive partitions), not Spark's litter.

    Only `*.parquet` counts, so `_SUCCESS`, `*.crc` and `.part-*.parquet.crc` do not; nor does
    anything under a folder starting with `_` or `.` (`_temporary/`, `.spark-staging-*/`).
    """
    files = []
    for path in folder.rglob("*.parquet"):
        if path.is_file() and not any(_hidden(part) for part in path.relative_to(folder).parts):
            files.append(path)
    return sorted(files)


def _table(database: str, table: str, folder: Path) -> TableInfo | None:
    files = _data_files(folder)
    if not files:
        return None
    return TableInfo(database, table, folder, len(files), sum(f.stat().st_size for f in files))


def local_catalog(lake_root: Path, naming: Naming) -> list[TableInfo]:
    """The tables the Glue crawlers would make of the local lake, sorted by database, table.

    Bronze: `bronze/{table}/` is `{database_prefix}_bronze.{table}`. Gold:
    `gold/{dataset_table}/{model}/` is `{database_prefix}_gold.{model}`. A folder without
    parquet files is no table.
    """
    lake_root = Path(lake_root)
    bronze, gold = LAYERS
    # Iceberg tables come from their catalog (the data files of the current snapshot), not their folder.
    iceberg = iceberg_read.tables(lake_root, naming, TableInfo)
    committed = {t.path.resolve() for t in iceberg}
    tables = [
        _table(naming.database(bronze), folder.name, folder)
        for folder in _folders(lake_root / bronze)
        if folder.resolve() not in committed
    ]
    tables += [
        _table(naming.database(gold), model.name, model)
        for dataset in _folders(lake_root / gold)
        for model in _folders(dataset)
        if model.resolve() not in committed
    ]
    tables += iceberg
    tables.append(_runs_table(lake_root, naming))
    return sorted((t for t in tables if t), key=lambda t: (t.database, t.table, str(t.path)))


def _runs_table(lake_root: Path, naming: Naming) -> TableInfo | None:
    """`{database_prefix}_ops.runs`, as the core stack declares it over ops/runs/ on AWS."""
    folder = lake_root / naming.ops_runs_prefix()
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        return None
    return TableInfo(naming.ops_database, "runs", folder, len(files), sum(f.stat().st_size for f in files), "runs")


# ---------------------------------------------------------------- DuckDB


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _scan_sql(con: duckdb.DuckDBPyConnection, table: TableInfo) -> str:
    if table.kind == "runs":
        from dwlib.metrics import RUN_COLUMNS

        listed = ", ".join(_literal(str(f.resolve())) for f in sorted(table.path.glob("*.json")))
        columns = ", ".join(
            f"{_literal(c)}: {_literal(t.upper().replace('STRING', 'VARCHAR'))}" for c, t in RUN_COLUMNS
        )
        return f"read_json([{listed}], format = 'newline_delimited', columns = {{{columns}}})"
    if table.kind == "iceberg":
        return _iceberg_scan(con, table)
    files = _data_files(table.path)
    hive = any("=" in part for f in files for part in f.relative_to(table.path).parts[:-1])
    listed = ", ".join(_literal(str(f.resolve())) for f in files)
    # Partition values stay strings, as the Glue crawler types partition keys.
    options = "union_by_name = true, hive_partitioning = " + ("true, hive_types_autocast = false" if hive else "false")
    return f"read_parquet([{listed}], {options})"


def _iceberg_scan(con: duckdb.DuckDBPyConnection, table: TableInfo) -> str:
    """The snapshot's data files read at the table's schema, in its column order, as Athena reads them.

    A column no file of the snapshot holds (a full load whose source lost it, a gold model that no
    longer selects it: the table keeps it) is NULL, as is a column in the files written before it
    was added. A widened column (int to bigint, real to double, a larger decimal) comes back at
    the table's type even when every file still holds the narrower one.
    """
    listed = ", ".join(_literal(f) for f in table.data)
    files = f"read_parquet([{listed}], union_by_name = true, hive_partitioning = false)"
    relation = con.sql(f"SELECT * FROM {files}")  # reads the files' footers only
    held = {c.lower(): t for c, t in zip(relation.columns, relation.types, strict=True)}
    columns = []
    for name, iceberg_type in table.columns:
        wanted = duck_type(iceberg_type)
        found = held.get(name.lower())
        if found is None:
            value = f"CAST(NULL AS {wanted})" if wanted else "NULL"
        elif wanted is None or found == duckdb.sqltype(wanted):
            value = _quote(name)
        else:
            value = f"CAST({_quote(name)} AS {wanted})"
        columns.append(f"{value} AS {_quote(name)}")
    return f"(SELECT {', '.join(columns)} FROM {files})"


# Iceberg's primitive types (as pyiceberg writes them) in DuckDB's names.
ICEBERG_TYPES = {
    "boolean": "BOOLEAN", "int": "INTEGER", "long": "BIGINT", "float": "FLOAT", "double": "DOUBLE",
    "date": "DATE", "time": "TIME", "timestamp": "TIMESTAMP", "timestamptz": "TIMESTAMPTZ",
    "timestamp_ns": "TIMESTAMP_NS", "timestamptz_ns": "TIMESTAMPTZ", "string": "VARCHAR", "uuid": "UUID",
    "binary": "BLOB",
}  # fmt: skip
STRUCT_FIELD = re.compile(r"\d+: (.+?): (?:optional|required) (.+)", re.S)


def duck_type(iceberg_type: str) -> str | None:
    """An Iceberg type as pyiceberg writes it (`decimal(12, 2)`, `list<long>`, `map<string, int>`,
    `struct<1: a: optional string>`) in DuckDB's SQL; None for a type DuckDB has no name for."""
    text = iceberg_type.strip()
    if text in ICEBERG_TYPES:
        return ICEBERG_TYPES[text]
    if match := re.fullmatch(r"decimal\((\d+),\s*(\d+)\)", text):
        return f"DECIMAL({match.group(1)}, {match.group(2)})"
    if re.fullmatch(r"fixed\[\d+\]", text):
        return "BLOB"
    kind, _, rest = text.partition("<")
    if not rest.endswith(">"):
        return None
    parts = [duck_type(p) for p in _type_parts(rest[:-1])] if kind in ("list", "map") else []
    if kind == "list" and len(parts) == 1 and None not in parts:
        return f"{parts[0]}[]"
    if kind == "map" and len(parts) == 2 and None not in parts:
        return f"MAP({parts[0]}, {parts[1]})"
    if kind == "struct":
        fields = [STRUCT_FIELD.fullmatch(p.strip()) for p in _type_parts(rest[:-1])]
        types = [duck_type(f.group(2)) if f else None for f in fields]
        if fields and None not in types:
            return "STRUCT(" + ", ".join(f"{_quote(f.group(1))} {t}" for f, t in zip(fields, types, strict=True)) + ")"
    return None


def _type_parts(text: str) -> list[str]:
    """`a, map<b, c>` -> [`a`, `map<b, c>`]: the comma-separated parts outside brackets."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        depth += char in "<(["
        depth -= char in ">)]"
        current += char
    return [*parts, current.strip()]


def _create_view(con: duckdb.DuckDBPyConnection, table: TableInfo) -> None:
    if table.kind in ("arrow", "metadata"):
        hidden = f"__arrow_{abs(hash((table.database, table.table)))}"
        con.register(hidden, table.arrow)
        scan = _quote(hidden)
    else:
        scan = _scan_sql(con, table)
    view = f"{_quote(table.database)}.{_quote(table.table)}"
    if table.kind == "metadata":  # Trino's timestamp(3) with time zone stays zoned
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM {scan}")
        return
    relation = con.sql(f"SELECT * FROM {scan}")
    # Spark writes timestamps as INT96 or as UTC-adjusted TIMESTAMP_MICROS, which DuckDB reads
    # as TIMESTAMP WITH TIME ZONE; Athena reads both as `timestamp`: the UTC wall-clock time.
    # And Athena reads Parquet timestamps as timestamp(3), rounding microseconds half up to
    # milliseconds (Trino's Parquet decoders), so equality and joins hold at millisecond precision.
    to_timestamp = [
        f"make_timestamp(CAST(floor((epoch_us(CAST({_quote(c)} AS TIMESTAMP)) + 500) / 1000) AS BIGINT) * 1000) "
        f"AS {_quote(c)}"
        for c, t in zip(relation.columns, relation.types, strict=True)
        if t.id.startswith("timestamp")
    ]
    replace = f" REPLACE ({', '.join(to_timestamp)})" if to_timestamp else ""
    con.execute(f"CREATE VIEW {view} AS SELECT *{replace} FROM {scan}")


def _open(catalog: list[TableInfo], naming: Naming) -> tuple[duckdb.DuckDBPyConnection, dict[str, str]]:
    """The connection, and why each table DuckDB cannot read has no view, by table name.

    One unreadable table (files that disagree with each other or with its schema) must not take
    the rest of the lake down with it: the other tables stay queryable, and a query that reads
    that one fails naming it (`_refuse_unreadable`).
    """
    seen: dict[str, TableInfo] = {}
    for table in catalog:
        if table.name in seen:
            raise QueryError(
                f"two folders make the table {table.name}: {seen[table.name].path} and {table.path}; "
                "rename one gold model"
            )
        seen[table.name] = table
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")  # Athena's session zone: current_date, ISO 8601 parsing
        for macro in _macro_sql():
            con.execute(macro)
        con.create_function("dw_json_text", json_text, ["VARCHAR", "BOOLEAN"], "VARCHAR", side_effects=False)
        for layer in LAYERS:
            con.execute(f"CREATE SCHEMA {_quote(naming.database(layer))}")
        for database in sorted({t.database for t in catalog} - {naming.database(layer) for layer in LAYERS}):
            con.execute(f"CREATE SCHEMA {_quote(database)}")
    except duckdb.Error as e:
        con.close()
        raise QueryError(f"could not open the local lake: {e}") from None
    unreadable = {}
    for table in catalog:
        try:
            _create_view(con, table)
        except duckdb.Error as e:
            unreadable[table.name] = _unreadable(table, e)
    return con, unreadable


def _unreadable(table: TableInfo, error: duckdb.Error) -> str:
    reason = str(error).splitlines()[0]
    return (
        f"table {table.name} cannot be read locally: DuckDB cannot read its files under {table.path} ({reason}). "
        "The other tables can still be queried; to fix this one, run the dataset that writes it again "
        "(`dw run DATASET`), or move its stale files out of that folder."
    )


def _refuse_unreadable(statement: exp.Expression, unreadable: dict[str, str]) -> None:
    """The message of the first table the statement reads that could not be opened, as a QueryError."""
    for table in statement.find_all(exp.Table):
        name = f"{table.db.lower()}.{table.name.lower()}"
        if name in unreadable:
            raise QueryError(unreadable[name])


def open_lake(lake_root: Path, naming: Naming) -> tuple[duckdb.DuckDBPyConnection, dict[str, str]]:
    """`connect`'s connection, and why each table without a view could not be read, by table name."""
    return _open(local_catalog(lake_root, naming), naming)


def connect(lake_root: Path, naming: Naming) -> duckdb.DuckDBPyConnection:
    """In-memory DuckDB with one schema per Glue database (both layers, even if empty) and one
    VIEW per table of `local_catalog`, so that `pp_dw_bronze.fda_nsde` resolves. A table DuckDB
    cannot read has no view (`open_lake` says why)."""
    return open_lake(lake_root, naming)[0]


def _athena_type(t: duckdb.DuckDBPyType) -> str:
    """A DuckDB type as Athena names it."""
    kind = t.id
    if str(t) == "JSON":
        return "json"
    if kind == "decimal":
        params = dict(t.children)
        return f"decimal({params['precision']},{params['scale']})"
    if kind in ("list", "array"):
        return f"array({_athena_type(dict(t.children)['child'])})"
    if kind == "map":
        params = dict(t.children)
        return f"map({_athena_type(params['key'])}, {_athena_type(params['value'])})"
    if kind == "struct":
        return "row(" + ", ".join(f"{name} {_athena_type(child)}" for name, child in t.children) + ")"
    return ATHENA_TYPES.get(kind, kind)


ATHENA_TYPES = {
    "float": "real",
    "blob": "varbinary",
    "enum": "varchar",
    # DuckDB sums integers into HUGEINT; Trino's sum of integers is a bigint.
    "hugeint": "bigint",
    "uhugeint": "bigint",
    "ubigint": "bigint",
    "uinteger": "bigint",
    "usmallint": "integer",
    "utinyint": "smallint",
    "timestamp_s": "timestamp",
    "timestamp_ms": "timestamp",
    "timestamp_ns": "timestamp",
    "interval": "interval day to second",
    '"null"': "unknown",
    "null": "unknown",
}


def _columns(con: duckdb.DuckDBPyConnection, table: TableInfo) -> list[tuple[str, str]]:
    relation = con.sql(f"SELECT * FROM {_quote(table.database)}.{_quote(table.table)}")
    return [(c, _athena_type(t)) for c, t in zip(relation.columns, relation.types, strict=True)]


def _schema(con: duckdb.DuckDBPyConnection, catalog: list[TableInfo]) -> dict:
    """`{database: {table: {column: type}}}` for sqlglot's type annotation."""
    schema: dict = {}
    for table in catalog:
        columns = {}
        for name, athena_type in _columns(con, table):
            try:
                columns[name] = exp.DataType.build(athena_type, dialect=READ_DIALECT)
            except Exception:  # a type sqlglot cannot read: the column stays untyped
                columns[name] = exp.DataType.build("unknown")
        schema.setdefault(table.database, {})[table.table] = columns
    return schema


# ---------------------------------------------------------------- parsing


@contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    """sqlglot logs a warning when it falls back to a raw Command; the refusal says enough."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


TOKEN = re.compile(r"<Token token_type: [^,]+, text: (.*?), line: .*?>")


def _keep_json_path_text() -> None:
    """sqlglot parses a JSON path literal into its own JSONPath, which reads Trino's paths otherwise (`$.1`,
    `$[fuu]`, `$[-1]`, `$.a..b`): keep the text as written, for `_json_path` to read as Trino does."""
    dialect = Dialect  # athena parses with a Trino dialect of its own: patch what both inherit
    original = dialect.to_json_path
    if getattr(original, "keeps_text", False):
        return

    def to_json_path(self, path):  # noqa: ANN001, ANN202
        result = original(self, path)
        if isinstance(path, exp.Literal) and path.is_string and result is not None:
            result.meta["path_text"] = path.name
        return result

    to_json_path.keeps_text = True  # type: ignore[attr-defined]
    dialect.to_json_path = to_json_path


_keep_json_path_text()


def _parse(sql: str) -> exp.Expression:
    try:
        with _quiet_sqlglot():
            statements = [s for s in sqlglot.parse(sql, read=READ_DIALECT) if s is not None]
    except ParseError as e:
        first = e.errors[0] if e.errors else {}
        where = f" at line {first['line']}, column {first['col']}" if first.get("line") else ""
        problem = TOKEN.sub(r"'\1'", first.get("description") or str(e))
        highlight = first.get("highlight")
        near = f" near {highlight!r}" if highlight and repr(highlight) not in problem else ""
        raise QueryError(f"could not parse the SQL: {problem}{near}{where}") from None
    except TokenError as e:
        raise QueryError(f"could not parse the SQL: {e}") from None
    except Exception as e:  # noqa: BLE001 - sqlglot raises plain ValueErrors too (a JSON path it cannot read)
        raise QueryError(f"could not parse the SQL: {e}") from None
    if not statements:
        raise QueryError("no SQL statement given")
    if len(statements) > 1:
        raise QueryError(f"one statement at a time, please: got {len(statements)}")
    statement = statements[0]
    _subscripts_as_written(statement)
    _mark_typed_literals(statement, sql)
    if not isinstance(statement, exp.Query | exp.Values):
        kind = statement.name.upper() if isinstance(statement, exp.Command) else statement.key.upper()
        if kind in ("SHOW", "DESCRIBE"):
            raise QueryError(f"{kind} is answered from the local catalog by run_query, not translated")
        raise QueryError(f"only read-only statements run locally (SELECT, WITH, SHOW, DESCRIBE); this one is {kind}")
    return statement


def _subscripts_as_written(statement: exp.Expression) -> None:
    """Put back the index of every `x[i]` as the SQL wrote it, marked 1-based (Trino's and DuckDB's).

    sqlglot's parser stores `x[2]` as a 0-based `x[1]` when, at parse time, `x` may be an array
    (its type unknown), and as written when it is a map. A CTE's or a view's column has no type
    yet then: the map `m[2]` became `m[1]`, the key 1. The check must run before the query is
    typed, with the types the parser saw, to undo exactly the shifts it made.
    """
    for bracket in statement.find_all(exp.Bracket):
        if bracket.args.get("offset") is not None or len(bracket.expressions) != 1:
            continue  # element_at(x, i) is parsed with its 1-based index as written
        (stored,) = bracket.expressions
        (index,) = apply_index_offset(bracket.this, [stored], 1, dialect=READ_DIALECT)
        if index is not stored:  # a shift undone; `i + -1`, which the parser could not fold, back to `i`
            index = _minus_one(stored) or index
        bracket.set("expressions", [index])
        bracket.set("offset", 1)


def _minus_one(node: exp.Expression) -> exp.Expression | None:
    """`x` of `x + -1`; None for anything else."""
    minus = node.expression if isinstance(node, exp.Add) else None
    return node.this if isinstance(minus, exp.Neg) and minus.this == exp.Literal.number(1) else None


def _mark_typed_literals(statement: exp.Expression, sql: str) -> None:
    """Mark the typed literals sqlglot parses as CASTs: DECIMAL '1.50' with its Trino type, a
    decimal(3, 2), and TIMESTAMP '...' and DATE '...' as literals (FOR TIMESTAMP AS OF reads a
    literal locally, not a CAST written out)."""
    try:
        tokens = Dialect.get_or_raise(READ_DIALECT).tokenize(sql)
    except Exception:
        return
    starts = {
        b.start
        for a, b in zip(tokens, tokens[1:], strict=False)
        if a.token_type == TokenType.DECIMAL and b.token_type == TokenType.STRING
    }
    # TIMESTAMP '...', DATE '...', TIMESTAMP WITH TIME ZONE '...': literals, where FOR TIMESTAMP AS OF
    # takes them (sqlglot parses them as CASTs, which it takes only locally).
    temporal = {
        b.start
        for a, b in zip(tokens, tokens[1:], strict=False)
        if b.token_type == TokenType.STRING
        and (a.token_type in (TokenType.TIMESTAMP, TokenType.DATE) or a.text.upper() == "ZONE")
    }
    for cast in statement.find_all(exp.Cast):
        literal = cast.this
        if isinstance(literal, exp.Literal) and literal.meta.get("start") in temporal:
            cast.meta["literal"] = True
        if not (cast.to.is_type(DType.DECIMAL) and not cast.to.expressions and isinstance(literal, exp.Literal)):
            continue
        if literal.meta.get("start") in starts:
            match = re.fullmatch(r"\s*[+-]?(\d*)(?:\.(\d*))?\s*", literal.name)
            if not match or not (match.group(1) or match.group(2)):
                raise QueryError(f"DECIMAL '{literal.name}' is not a decimal literal (Athena rejects it too)")
            whole, fraction = match.group(1).lstrip("0"), match.group(2) or ""
            precision = max(len(whole) + len(fraction), 1)
            if precision > 38:
                raise QueryError(f"DECIMAL '{literal.name}' has more than 38 digits (Athena rejects it too)")
            cast.meta["decimal_literal"] = (precision, len(fraction))


# ---------------------------------------------------------------- translation


def translate(sql: str, schema: dict | None = None) -> str:
    """Trino/Athena SQL -> DuckDB SQL.

    `schema` (`{database: {table: {column: type}}}`, as `run_query` builds from the lake) lets
    the type-dependent fix-ups apply to columns; without it they apply where the types show in
    the SQL itself (literals, casts). The DuckDB SQL is meant for a `connect` connection, which
    defines the helper macros it may call.
    """
    return _to_duckdb(_parse(sql), schema)[0]


def _to_duckdb(statement: exp.Expression, schema: dict | None) -> tuple[str, list[str | None], list[int | None]]:
    """DuckDB SQL, the time zone Trino gives each output column (None: not zoned), and the precision of each
    output timestamp finer than milliseconds (None: timestamp(3) or no timestamp)."""
    statement = statement.copy()
    _refuse_upfront(statement)
    _rename_lambda_parameters(statement)
    for table in statement.find_all(exp.Table):
        if table.catalog.lower() == AWS_CATALOG:
            table.set("catalog", None)
    for select in list(statement.find_all(exp.Select)):
        _name_outputs(select)
    try:
        typed = qualify(
            statement.copy(),
            dialect=READ_DIALECT,
            schema=schema or {},
            expand_alias_refs=False,  # Trino has no alias references; keep its name resolution
            validate_qualify_columns=False,
            quote_identifiers=True,
            identify=True,
        )
        typed = annotate_types(typed, schema=schema or {}, dialect=READ_DIALECT)
    except Exception:  # qualification is best effort: without it, only literal types are known
        try:
            typed = annotate_types(statement.copy(), dialect=READ_DIALECT)
        except Exception:
            typed = statement.copy()
    _retype(typed)
    for node in reversed(list(typed.walk(bfs=False))):  # children before their parents
        parent, arg_key, index = node.parent, node.arg_key, node.index
        _check_zones(node)
        fixed = _localize(node)
        fixed = _fix(fixed) if fixed is node else fixed
        if isinstance(node, ARRAY_MAKERS) and (fixed.type is None or fixed.type.is_type(DType.UNKNOWN)):
            # sqlglot leaves these untyped; the Trino type dw gave the node, if any, is kept
            fixed.type = node.type if _is(node, DType.ARRAY) else exp.DataType(this=DType.ARRAY, nested=True)
        if (
            isinstance(node, exp.Func | exp.DPipe)
            and _text_type(node)
            and fixed is node
            and any(isinstance(arg, exp.Null) for arg in node.iter_expressions())
        ):  # concat('a', NULL) is a varchar NULL in Trino; DuckDB's untyped NULL makes an integer column
            fixed = _as(fixed, "VARCHAR")
        if fixed is not node:
            if fixed.type is None or fixed.type.is_type(DType.UNKNOWN):
                fixed.type = node.type  # the Trino type, which the fix-ups keep
            if parent is None:
                typed = fixed
            else:
                parent.set(arg_key, fixed, index)
    zones = [_zone(p.unalias()) for p in typed.selects] if isinstance(typed, exp.Query) else []
    precisions = [_output_precision(p.unalias()) for p in typed.selects] if isinstance(typed, exp.Query) else []
    try:
        return typed.sql(dialect=WRITE_DIALECT, unsupported_level=ErrorLevel.RAISE), zones, precisions
    except (UnsupportedError, ValueError) as e:
        raise unsupported(
            str(e).rstrip("."), "sqlglot cannot write it for DuckDB without changing its meaning"
        ) from None


def _rename_lambda_parameters(root: exp.Expression) -> None:
    """Give each lambda's parameters names of their own (x -> dw_l0_x). dw's macros take lambdas too, and DuckDB
    expands a macro's argument into its body as written: a user's `i -> i = ARRAY[1, 2]` met the `lambda i` inside
    the array-equality macro, whose `i` then named the wrong thing. Innermost lambdas first, so that a parameter an
    inner lambda binds again stays its own."""
    lambdas = [n for n in root.walk(bfs=False) if isinstance(n, exp.Lambda)]
    for number, fn in reversed(list(enumerate(lambdas))):
        names = {p.name: f"dw_l{number}_{p.name}" for p in fn.expressions if isinstance(p, exp.Identifier)}
        if not names:
            continue
        for node in fn.this.walk():
            if isinstance(node, exp.Column):
                if not node.table and node.name in names:
                    node.this.set("this", names[node.name])
                elif node.table in names and not node.db:
                    node.args["table"].set("this", names[node.table])
            elif (
                isinstance(node, exp.Identifier)
                and node.name in names
                and not isinstance(node.parent, exp.Column | exp.Dot | exp.Alias | exp.Table)
                and not (isinstance(node.parent, exp.Lambda) and node.arg_key == "expressions")
            ):
                node.set("this", names[node.name])
        for param in fn.expressions:
            if isinstance(param, exp.Identifier) and param.name in names:
                param.set("this", names[param.name])


def _precision(node: exp.Expression) -> int | None:
    """The precision of a plain timestamp as Trino types it (TIMESTAMP '... .123456' is a timestamp(6))."""
    if not _is(node, DType.TIMESTAMP) or not node.type.expressions:
        return None
    param = node.type.expressions[0]
    value = param.this if isinstance(param, exp.DataTypeParam) else param
    return int(value.name) if isinstance(value, exp.Literal) and value.name.isdigit() else None


def _output_precision(node: exp.Expression) -> int | None:
    """A result column's timestamp precision finer than milliseconds, which the results write in full; a year-month
    interval in the result is refused (DuckDB's interval is written as days)."""
    if (_is(node, DType.INTERVAL) or _unknown(node)) and any(
        _unit(i) in ("YEAR", "MONTH", "QUARTER") for i in node.find_all(exp.Interval)
    ):
        raise unsupported(
            "an interval year to month in the result",
            "Trino writes it as years-months (0-1), DuckDB's interval comes back as days; add it to a date instead, "
            "or select its parts",
        )
    precision = _precision(node)
    return precision if precision is not None and 3 < precision <= 6 else None


def _unknown(node: exp.Expression | None) -> bool:
    """No type known (sqlglot's UNKNOWN): DuckDB's meaning would apply unchecked."""
    return (
        node is not None and not isinstance(node, exp.Null) and (node.type is None or node.type.is_type(DType.UNKNOWN))
    )


def _element(dtype: exp.DataType | None) -> exp.DataType | None:
    """The element type of an array type, None when not known."""
    if dtype is not None and dtype.is_type(DType.ARRAY) and dtype.expressions:
        element = dtype.expressions[0]
        return element if isinstance(element, exp.DataType) and not element.is_type(DType.UNKNOWN) else None
    return None


def _key_value(dtype: exp.DataType | None) -> tuple[exp.DataType | None, exp.DataType | None]:
    """The key and value types of a map type, None where not known."""
    if dtype is not None and dtype.is_type(DType.MAP) and len(dtype.expressions) == 2:
        return tuple(t if not t.is_type(DType.UNKNOWN) else None for t in dtype.expressions)  # type: ignore[return-value]
    return None, None


def _first_arg(node: exp.Expression) -> exp.Expression | None:
    if isinstance(node, exp.Anonymous):
        return node.expressions[0] if node.expressions else None
    return node.this if isinstance(node.this, exp.Expression) else None


def _lambda_param_types(node: exp.Expression, fn: exp.Lambda) -> list[exp.DataType | None]:
    """The types of a lambda's parameters: the elements of the array (the key and value of the map,
    the elements of both arrays of zip_with) the function applies it to."""
    name = node.name.lower() if isinstance(node, exp.Anonymous) else ""
    if name in ("map_filter", "transform_values", "transform_keys", "map_zip_with") and len(fn.expressions) == 2:
        return list(_key_value(node.expressions[0].type))
    if name == "zip_with" and len(node.expressions) == 3 and len(fn.expressions) == 2:
        return [_element(node.expressions[0].type), _element(node.expressions[1].type)]
    if isinstance(node, exp.Reduce) or len(fn.expressions) != 1:
        return [None] * len(fn.expressions)  # reduce's state takes the initial value's type and more
    first = _first_arg(node)
    return [_element(first.type) if first is not None else None]


# Trino's result types of functions sqlglot does not type (dw's macros among them).
FUNCTION_TYPES = {
    "json_array_length": "BIGINT", "json_size": "BIGINT", "regexp_position": "INTEGER", "hamming_distance": "BIGINT",
    "url_extract_host": "VARCHAR", "url_extract_protocol": "VARCHAR", "url_extract_path": "VARCHAR",
    "url_extract_query": "VARCHAR", "url_extract_fragment": "VARCHAR", "url_extract_parameter": "VARCHAR",
    "format_datetime": "VARCHAR", "to_iso8601": "VARCHAR", "human_readable_seconds": "VARCHAR", "to_base": "VARCHAR",
    "codepoint": "INTEGER", "e": "DOUBLE", "pi": "DOUBLE", "infinity": "DOUBLE", "nan": "DOUBLE",
    "cosine_similarity": "DOUBLE", "json_array_get": "JSON", "timezone_hour": "BIGINT", "timezone_minute": "BIGINT",
    "millisecond": "BIGINT", "to_milliseconds": "BIGINT", "crc32": "BIGINT", "bit_count": "BIGINT",
    "is_infinite": "BOOLEAN", "is_finite": "BOOLEAN",
}  # fmt: skip
# The same for sqlglot's own expressions it leaves untyped.
EXPRESSION_TYPES = {
    exp.TimeToUnix: "DOUBLE", exp.JSONExtractScalar: "VARCHAR", exp.Hex: "VARCHAR", exp.Pad: "VARCHAR",
    exp.Replace: "VARCHAR", exp.Normalize: "VARCHAR", exp.Decode: "VARCHAR", exp.JSONFormat: "VARCHAR",
    exp.FromBase: "BIGINT", exp.FromISO8601Date: "DATE", exp.RegexpCount: "BIGINT", exp.Second: "BIGINT",
    exp.RegexpExtractAll: "ARRAY(VARCHAR)", exp.Split: "ARRAY(VARCHAR)", exp.RegexpSplit: "ARRAY(VARCHAR)",
    exp.SHA2Digest: "VARBINARY",
}  # fmt: skip


# Trino's bigint results sqlglot types otherwise: the date and time fields, date_diff, the bitwise functions.
BIGINT_FUNCTIONS = (
    exp.Year, exp.Quarter, exp.Month, exp.Day, exp.DayOfMonth, exp.DayOfWeek, exp.DayOfWeekIso, exp.DayOfYear,
    exp.WeekOfYear, exp.YearOfWeek, exp.Hour, exp.Minute, exp.Second, exp.DateDiff, exp.BitwiseAnd, exp.BitwiseOr,
    exp.BitwiseXor, exp.BitwiseNot,
)  # fmt: skip


def _own_type(node: exp.Expression) -> exp.DataType | None:
    """Types sqlglot's annotator leaves unknown (or gets wrong) for Trino, from the arguments' types."""
    first = _first_arg(node)
    if isinstance(node, exp.Bracket) and len(node.expressions) == 1 and not isinstance(node.expressions[0], exp.Slice):
        element = _element(node.this.type) if node.this is not None else None
        return element or _key_value(node.this.type if node.this is not None else None)[1]
    if isinstance(node, exp.ArrayMax | exp.ArrayMin) and first is not None:
        return _element(first.type)
    if isinstance(node, exp.JSONExtract | exp.ParseJSON):
        return exp.DataType.build("JSON")
    if type(node) in EXPRESSION_TYPES and _unknown(node):
        return exp.DataType.build(EXPRESSION_TYPES[type(node)])
    if isinstance(node, exp.Reverse) and first is not None and _text_type(first):
        return exp.DataType.build("VARCHAR")
    if isinstance(node, exp.TimestampTrunc | exp.DateTrunc | exp.ArgMax | exp.ArgMin) and first is not None:
        return first.type if not _unknown(first) else None
    if isinstance(node, MATH_FUNCTIONS):
        return _math_type(node)
    if isinstance(node, exp.Flatten) and first is not None:
        return _element(first.type)
    if isinstance(node, exp.ArraySum) and first is not None and _element(first.type) is not None:
        element = _element(first.type)
        if element.is_type(*INTEGER_TYPES):
            return exp.DataType.build("BIGINT")
        return exp.DataType.build("DOUBLE") if element.is_type(DType.DOUBLE, DType.FLOAT) else None
    if isinstance(node, exp.Try | exp.Paren) and not _unknown(node.this):
        return node.this.type
    if isinstance(node, (exp.ArrayPosition, *BIGINT_FUNCTIONS)):
        return exp.DataType.build("BIGINT")
    if isinstance(node, exp.GenerateSeries) and _is(node.args.get("start"), *INTEGER_TYPES, DType.DATE):
        element = "DATE" if _is(node.args["start"], DType.DATE) else "BIGINT"  # sequence(1, 3) is array(bigint)
        return exp.DataType.build(f"ARRAY<{element}>")
    if isinstance(node, exp.Corr | exp.CovarPop | exp.CovarSamp):
        return exp.DataType.build("DOUBLE")
    if isinstance(node, exp.Sub) and _is(node.this, DType.TIMESTAMP) and _is(node.expression, DType.TIMESTAMP):
        return exp.DataType.build("INTERVAL")
    if isinstance(node, exp.Anonymous) and node.name.lower() in FUNCTION_TYPES:
        return exp.DataType.build(FUNCTION_TYPES[node.name.lower()])
    values = isinstance(node, exp.Anonymous) and node.name.lower() == "map_values"
    if (isinstance(node, exp.MapKeys) or values) and first is not None:
        part = _key_value(first.type)[1 if values else 0]
        return exp.DataType(this=DType.ARRAY, expressions=[part.copy()], nested=True) if part is not None else None
    if isinstance(node, exp.Reverse) and first is not None and _is(first, DType.ARRAY):
        return first.type
    if isinstance(node, exp.Cast) and node.meta.get("decimal_literal"):
        return exp.DataType.build("DECIMAL({}, {})".format(*node.meta["decimal_literal"]))
    lambdas = [c for c in node.iter_expressions() if isinstance(c, exp.Lambda)]
    if len(lambdas) == 1 and not _unknown(lambdas[0].this):
        body = lambdas[0].this.type
        name = node.name.lower() if isinstance(node, exp.Anonymous) else ""
        if isinstance(node, exp.Transform) or name == "zip_with":
            return exp.DataType(this=DType.ARRAY, expressions=[body.copy()], nested=True)
        if name == "transform_values":
            key = _key_value(node.expressions[0].type)[0]
            if key is not None:
                return exp.DataType(this=DType.MAP, expressions=[key.copy(), body.copy()], nested=True)
    if (
        (isinstance(node, exp.ArrayFilter) or (isinstance(node, exp.Anonymous) and node.name.lower() == "map_filter"))
        and first is not None
        and not _unknown(first)
    ):
        return first.type
    return None


def _unnest_columns(root: exp.Expression) -> dict[tuple[str, str], exp.DataType]:
    """`(alias, column)` -> type of the columns of UNNEST(array or map) AS alias(columns)."""
    columns: dict[tuple[str, str], exp.DataType] = {}
    for unnest in root.find_all(exp.Unnest):
        alias = unnest.args.get("alias")
        if alias is None or not alias.columns:
            continue
        types: list[exp.DataType | None] = []
        for arg in unnest.expressions:
            if _is(arg, DType.MAP):
                types += list(_key_value(arg.type))
            else:
                element = _element(arg.type)
                types.append(None if element is None or element.is_type(DType.STRUCT) else element)
        if any(
            _is(arg, DType.ARRAY) and _element(arg.type) is not None and _element(arg.type).is_type(DType.STRUCT)
            for arg in unnest.expressions
        ):
            continue  # an array of rows unnests into the rows' fields
        for name, dtype in zip(alias.columns, types, strict=False):
            if dtype is not None:
                columns[(alias.name.lower(), name.name.lower())] = dtype
    return columns


def _retype(root: exp.Expression) -> None:
    """Type what sqlglot's annotator leaves unknown but Trino knows, so the type-dependent fixes apply:
    lambda parameters (an element of the array, the key and value of the map), m[k] and element_at of a map,
    the columns of UNNEST(map or array), array_max / array_min, array_position, json_array_length; then
    the expressions over them again."""
    annotator = TypeAnnotator(schema=ensure_schema({}, dialect=READ_DIALECT))
    unnested = _unnest_columns(root)
    skip = (exp.Query, exp.Subquery, exp.Table, exp.Lambda, exp.From, exp.Join, exp.Where, exp.Order)

    def reannotate(node: exp.Expression) -> None:
        spec = annotator.expression_metadata.get(node.__class__)
        if not spec or isinstance(node, (*skip, exp.Column, exp.Identifier)):
            return
        try:
            if annotator_fn := spec.get("annotator"):
                annotator_fn(annotator, node)
            elif returns := spec.get("returns"):
                annotator._set_type(node, returns)
        except Exception:  # best effort, as the first annotation
            pass

    def visit(node: exp.Expression, env: dict[str, exp.DataType | None]) -> bool:
        changed = False
        children = list(node.iter_expressions())
        for child in children:
            if not isinstance(child, exp.Lambda):
                changed |= visit(child, env)
        for child in children:
            if isinstance(child, exp.Lambda):
                inner = dict(env)
                for param, dtype in zip(child.expressions, _lambda_param_types(node, child), strict=False):
                    inner[param.name] = dtype
                changed |= visit(child.this, inner)
        reference = isinstance(node, exp.Column) and not node.table
        parent = node.parent
        reference |= isinstance(node, exp.Identifier) and not isinstance(
            parent, exp.Column | exp.Lambda | exp.Dot | exp.Alias
        )
        name = node.name if reference else None
        if name is not None and name in env and env[name] is not None and _unknown(node):
            node.type = env[name].copy()
            return True
        if isinstance(node, exp.Column) and node.table and _unknown(node):
            dtype = unnested.get((node.table.lower(), node.name.lower()))
            if dtype is not None:
                node.type = dtype.copy()
                return True
        if changed:
            reannotate(node)
        own = _own_type(node)
        if own is not None and (node.type is None or node.type != own):
            node.type = own
            changed = True
        return changed

    with suppress(RecursionError):  # a very deep expression: the types sqlglot gave stay, and the refusals apply
        visit(root, {})


def _name_outputs(select: exp.Select) -> None:
    """Athena names an output column after its column, else `_col{position}`; DuckDB after the
    expression's text."""
    projections = select.expressions
    if any(isinstance(p, exp.Star) or (isinstance(p, exp.Column) and p.is_star) for p in projections):
        return  # positions depend on what the star expands to
    named = [
        p if isinstance(p, exp.Alias | exp.Column | exp.Dot) else exp.alias_(p, f"_col{i}", quoted=True, copy=False)
        for i, p in enumerate(projections)
    ]
    select.set("expressions", named)


def _is(node: exp.Expression | None, *types: DType) -> bool:
    return node is not None and node.type is not None and node.type.is_type(*types)


def _text_type(node: exp.Expression) -> bool:
    return _is(node, *exp.DataType.TEXT_TYPES)


def _unit(node: exp.Expression) -> str:
    unit = node.args.get("unit")
    return (unit.name if unit is not None else "DAY").upper()


def _as(node: exp.Expression, type_sql: str) -> exp.Cast:
    # Not exp.cast, which drops a cast to DECIMAL(3, 2) of a DECIMAL(2, 2) as a no-op.
    return exp.Cast(this=node, to=exp.DataType.build(type_sql, dialect=WRITE_DIALECT))


def _fn(name: str, *args: exp.Expression) -> exp.Anonymous:
    """A DuckDB function call, written as is."""
    return exp.Anonymous(this=name, expressions=list(args))


def _fix(node: exp.Expression) -> exp.Expression:
    """One node of the annotated Trino AST, corrected where sqlglot's DuckDB SQL differs from
    Trino; every branch names the Trino semantics it keeps."""
    fixed = _fix_trino(node)
    if fixed is not None:
        return fixed
    problem = _date_time_of_day(node)
    if problem is not None:  # Trino raises at run time: TRY makes it NULL
        if _in_try(node):
            return _as(exp.Null(), "DATE" if isinstance(node, exp.Add | exp.Sub | exp.DateAdd) else "BIGINT")
        raise QueryError(problem)
    # date_add('day', n, date) and date + INTERVAL 'n' DAY stay DATEs in Trino; DuckDB's
    # DATE + INTERVAL is a TIMESTAMP.
    if isinstance(node, exp.DateAdd) and _is(node.this, DType.DATE) and _unit(node) in DATE_UNITS:
        return _as(node, "DATE")
    if isinstance(node, exp.Add | exp.Sub) and any(
        _is(day, DType.DATE) and isinstance(interval, exp.Interval) and _unit(interval) in DATE_UNITS
        for day, interval in ((node.this, node.expression), (node.expression, node.this))
    ):
        return _as(node, "DATE")
    # date_trunc('month', date) is a DATE in Trino, a TIMESTAMP in DuckDB.
    if isinstance(node, exp.TimestampTrunc | exp.DateTrunc) and _is(node.this, DType.DATE):
        return _as(node, "DATE")
    # date_diff counts whole units elapsed in Trino (23:30 -> 01:00 next day is 0 days); sqlglot
    # writes DuckDB's date_diff, which counts unit boundaries crossed (1). DuckDB's date_sub is
    # Trino's date_diff.
    if isinstance(node, exp.DateDiff):
        return _fn("DATE_SUB", exp.Literal.string(_unit(node).lower()), node.expression, node.this)
    if isinstance(node, exp.Cast | exp.TryCast):
        return _varchar_length(node, _fix_cast(node))
    # Trino types current_timestamp timestamp(3) with time zone (as DuckDB does); sqlglot types
    # it TIMESTAMP, which the CAST fix-up above reads.
    if isinstance(node, exp.CurrentTimestamp):
        return _zoned(node, "UTC")
    # Trino's trim family removes all whitespace; DuckDB's removes only spaces.
    if isinstance(node, exp.Trim) and node.args.get("expression") is None:
        node.set("expression", exp.Literal.string(WHITESPACE))
        return node
    # format_datetime(ts, 'yyyy-MM-dd') takes a Joda-Time pattern; sqlglot passes it through as
    # an unknown function.
    if isinstance(node, exp.Anonymous) and node.name.lower() == "format_datetime":
        return _format_datetime(node)
    # Integer / integer truncates in Trino. sqlglot writes CAST(TRUNC(a / b) AS BIGINT), which
    # goes through DOUBLE (wrong past 2^53) and widens integer to bigint; DuckDB's // is exact.
    if isinstance(node, exp.Div):
        if _is(node.this, *INTEGER_TYPES) and _is(node.expression, *INTEGER_TYPES):
            divided = _macro("dw_idiv", node, node.this, node.expression)  # 1 / 0 raises Division by zero
            # of the wider operand's type, as Trino's (integer / integer is integer; sqlglot says bigint)
            divided.type = exp.DataType.build(
                max(node.this.type.this, node.expression.type.this, key=INTEGER_TYPES.index)
            )
            return divided
        _refuse_unknown(node, (node.this, node.expression), "/", "integer division truncates, other division does not")
        return _decimal_div(node) or node
    aggregate = _aggregate_type(node)
    if aggregate is not None:
        return aggregate
    if isinstance(node, exp.Avg):
        return _decimal_avg(node) or node
    if isinstance(node, MATH_FUNCTIONS):
        return _math(node)
    if isinstance(node, exp.Window) and isinstance(node.this, exp.Avg):
        return _decimal_avg(node.this, window=node) or node
    # approx_distinct is exact for small sets in Trino (sparse HyperLogLog); DuckDB's
    # approx_count_distinct is not (it counts 2 of 3 names). The local lake is small: count exactly.
    if isinstance(node, exp.ApproxDistinct):
        return exp.Count(this=exp.Distinct(expressions=[node.this]))
    # cardinality(map): sqlglot writes ARRAY_LENGTH, which DuckDB has for lists only.
    if isinstance(node, exp.ArraySize) and _is(node.this, DType.MAP):
        return _fn("CARDINALITY", node.this)
    # regexp_extract is NULL without a match in Trino, '' in DuckDB.
    if isinstance(node, exp.RegexpExtract):
        _regexp_group(node)
        matches = exp.RegexpLike(this=node.this.copy(), expression=node.expression.copy())
        return exp.Case(ifs=[exp.If(this=matches, true=node)])
    # split_part past the last field is NULL in Trino, '' in DuckDB; an index below 1 raises.
    if isinstance(node, exp.SplitPart):
        index = node.args["part_index"]
        parts = _fn("LIST_EXTRACT", _fn("STR_SPLIT", node.this, node.args["delimiter"]), index)
        empty = exp.and_(  # split_part('', '', n) is NULL (no characters to split into); DuckDB's gives ''
            exp.EQ(this=node.this.copy(), expression=exp.Literal.string("")),
            exp.EQ(this=node.args["delimiter"].copy(), expression=exp.Literal.string("")),
        )
        parts = exp.Case(ifs=[exp.If(this=exp.not_(empty), true=parts)])
        ok = exp.or_(
            exp.Is(this=index.copy(), expression=exp.Null()),
            exp.GT(this=index.copy(), expression=exp.Literal.number(0)),
        )
        result = _raise_unless(node, ok, parts, exp.Literal.string("Index must be greater than zero"))
        return _as(result, "VARCHAR")  # a varchar, NULL arguments too (DuckDB folds them to an integer NULL)
    # millisecond(ts) is the millisecond of the second in Trino (0-999); DuckDB's counts the seconds too.
    if isinstance(node, exp.Anonymous) and node.name.lower() == "millisecond" and len(node.expressions) == 1:
        result = exp.Mod(this=node, expression=exp.Literal.number(1000))
        result.type = exp.DataType.build("BIGINT")
        return exp.paren(result, copy=False)
    return node


TIME_OF_DAY_SECONDS = {"HOUR": 3600, "MINUTE": 60, "SECOND": 1}


def _date_time_of_day(node: exp.Expression) -> str | None:
    """Athena's error where a DATE meets a time of day, which DuckDB reads as midnight: date_add, date_diff and
    date_trunc take day, week, month, quarter and year on a date (DateTimeFunctions.getDateField), and DATE +/- an
    interval of whole days only (DateTimeOperators); date - date is refused. A DATE plus INTERVAL '24' HOUR is
    rewritten to whole days here. None: no such problem."""
    on_date = isinstance(node, exp.DateAdd | exp.DateTrunc | exp.TimestampTrunc) and _is(node.this, DType.DATE)
    if on_date and _unit(node) not in DATE_UNITS:
        return f"'{_unit(node).lower()}' is not a valid DATE field (Athena: date_add and date_trunc on a date)"
    dates = isinstance(node, exp.DateDiff) and _is(node.this, DType.DATE) and _is(node.expression, DType.DATE)
    if dates and _unit(node) not in DATE_UNITS:
        return f"'{_unit(node).lower()}' is not a valid DATE field (Athena: date_diff of two dates)"
    if isinstance(node, exp.Sub) and _is(node.this, DType.DATE) and _is(node.expression, DType.DATE):
        raise unsupported(
            "date - date",
            "Trino has no such operator and reads it, if at all, as timestamps subtracted (DuckDB: a number of days); "
            "use date_diff('day', start, end)",
        )
    if not isinstance(node, exp.Add | exp.Sub):
        return None
    for day, interval in ((node.this, node.expression), (node.expression, node.this)):
        if not (_is(day, DType.DATE) and isinstance(interval, exp.Interval)) or _unit(interval) in DATE_UNITS:
            continue
        if isinstance(node, exp.Sub) and day is node.expression:
            return None  # interval - date: sqlglot and DuckDB reject it on their own
        value = interval.this
        seconds = TIME_OF_DAY_SECONDS.get(_unit(interval))
        if seconds is not None and isinstance(value, exp.Literal) and re.fullmatch(r"-?\d+", value.name.strip()):
            total = int(value.name) * seconds
            if total % 86400 == 0:  # whole days: a date still
                interval.set("this", exp.Literal.string(str(total // 86400)))
                interval.set("unit", exp.var("DAY"))
                return None
        verb = (
            "add hour, minutes or seconds to" if isinstance(node, exp.Add) else "subtract hour, minutes or seconds from"
        )
        return f"Cannot {verb} a date (Athena: a date plus an interval of whole days only)"
    return None


# Trino's math functions whose result type follows the argument's, where DuckDB's does not.
MATH_FUNCTIONS = (exp.Sign, exp.Ceil, exp.Floor, exp.Round, exp.Trunc)


def _math_type(node: exp.Expression) -> exp.DataType | None:
    """Trino's type of sign, ceil/floor, round and truncate (MathFunctions' signatures): an integer,
    double or real argument's own type; over decimal(p, s) sign is a decimal(1, 0), ceil and floor a
    decimal(p - s + min(s, 1), 0), round a decimal(p - s + min(s, 1), 0) and with n digits a
    decimal(p + 1, s), truncate a decimal(max(1, p - s), 0) and with n digits a decimal(p, s)."""
    if not isinstance(node, MATH_FUNCTIONS) or not isinstance(node.this, exp.Expression):
        return None
    value = node.this
    if _is(value, *INTEGER_TYPES) and _decimal_type(value):  # a literal past 2^31 is a bigint (sqlglot: int)
        return exp.DataType.build(INTEGER_OF_PRECISION[_decimal_type(value)[0]])
    if not _is_decimal(value):  # a literal such as 1.5 is a decimal (sqlglot: double)
        return value.type.copy() if _is(value, DType.DOUBLE, DType.FLOAT) else None
    if _decimal_type(value) is None:
        return None
    p, s = _decimal_type(value)
    digits = node.args.get("decimals") is not None
    if isinstance(node, exp.Sign):
        p, s = 1, 0
    elif isinstance(node, exp.Ceil | exp.Floor) or (isinstance(node, exp.Round) and not digits):
        p, s = min(38, p - s + min(s, 1)), 0
    elif isinstance(node, exp.Round):
        p = min(38, p + 1)
    elif not digits:  # truncate(x)
        p, s = max(1, p - s), 0
    return exp.DataType.build(f"DECIMAL({p}, {s})")


def _math(node: exp.Expression) -> exp.Expression:
    """sign, ceil/floor, round and truncate of Trino's type (`_math_type`); DuckDB's sign is a tinyint,
    its ceil and floor of an integer a double, and its decimal results keep the argument's precision."""
    trino = _math_type(node)
    value = node.this
    if trino is None:
        return node
    if _is(value, *INTEGER_TYPES) and isinstance(node, exp.Ceil | exp.Floor | exp.Round):
        digits = node.args.get("decimals")
        if digits is None or isinstance(node, exp.Ceil | exp.Floor):
            return value  # already whole: ceil(5) is 5, an integer (DuckDB: 5.0, a double)
        kind = trino.this
        low, high = -(2 ** (INTEGER_PRECISION_BITS[kind] - 1)), 2 ** (INTEGER_PRECISION_BITS[kind] - 1) - 1
        rounded = _macro(
            "dw_round_int", node, value, digits, exp.Literal.number(low), exp.Literal.number(high),
            exp.Literal.string(exp.DataType.build(kind).sql(dialect="trino").lower()),
        )  # fmt: skip
        fixed: exp.Expression = _as(rounded, trino.sql(dialect=WRITE_DIALECT))
    elif isinstance(node, exp.Sign) and trino.is_type(DType.DOUBLE, DType.FLOAT):
        fixed = _fn("dw_sign_float", value)
    elif isinstance(node, exp.Sign) or trino.is_type(DType.DECIMAL):
        fixed = _as(node, trino.sql(dialect=WRITE_DIALECT))
    else:
        return node
    fixed.type = trino
    return fixed


def _optional_groups(pattern: str) -> set[int] | None:
    """The groups of a pattern that may take no part in a match (under ?, *, {0,} or one side of |);
    None when Python cannot read the pattern."""
    try:
        from re import _parser as sre_parse  # type: ignore[attr-defined]

        parsed = sre_parse.parse(pattern)
    except Exception:
        return None
    optional: set[int] = set()

    def walk(items, inside: bool) -> None:
        for op, arg in items:
            name = str(op)
            if name == "SUBPATTERN":
                group, _, _, sub = arg
                if group is not None and inside:
                    optional.add(group)
                walk(sub, inside)
            elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                low, _, sub = arg
                walk(sub, inside or low == 0)
            elif name == "BRANCH":
                for branch in arg[1]:
                    walk(branch, True)
            elif name in ("ASSERT", "ASSERT_NOT"):
                walk(arg[1], True)
            elif name == "ATOMIC_GROUP":
                walk(arg, inside)
            elif name == "GROUPREF_EXISTS":
                walk(arg[1], True)
                if arg[2] is not None:
                    walk(arg[2], True)

    walk(parsed, False)
    return optional


def _regexp_group(node: exp.RegexpExtract | exp.RegexpExtractAll) -> None:
    """Trino's regexp_extract of a group the pattern lacks raises, and of a group that took no part in the
    match is NULL (DuckDB: '' for both): the first raises here, the second is refused where it can happen."""
    group = node.args.get("group")
    name = "regexp_extract_all" if isinstance(node, exp.RegexpExtractAll) else "regexp_extract"
    if group is None or (isinstance(group, exp.Literal) and group.name == "0"):
        return
    compiled = _pattern(node.expression)
    number = int(group.name) if isinstance(group, exp.Literal) and group.name.isdigit() else None
    if compiled is not None and number is not None and number > compiled.groups:
        raise QueryError(
            f"{name}: Pattern has {compiled.groups} groups. Cannot access group {number} (Athena rejects it too)"
        )
    optional = _optional_groups(compiled.pattern) if compiled is not None else None
    if optional is None or (optional and (number is None or number in optional)):
        raise unsupported(
            f"{name} of group {group.sql(dialect=READ_DIALECT)} of the pattern "
            f"{node.expression.sql(dialect=READ_DIALECT)}",
            "a group that takes no part in the match is NULL in Trino and '' in DuckDB; "
            "use a pattern whose group always takes part (no ?, * or | around it)",
        )


# ---- Trino semantics DuckDB does not share: refusals, errors Athena raises, TRY, time zones


def unsupported(construct: str, why: str) -> QueryError:
    """The one-paragraph refusal: the construct, why its local answer could differ, what to do."""
    return QueryError(
        f"{construct} is not supported locally: {why}. DuckDB's answer could differ from Athena's, so dw "
        "refuses rather than guess; run this query on Athena, or rewrite it without this construct."
    )


def _in_try(node: exp.Expression) -> bool:
    """Inside Trino's TRY(...): errors become NULL. DuckDB refuses error() there, so the
    NULL-returning twin of a raising construct is used instead."""
    return node.find_ancestor(exp.Try) is not None


def _macro(name: str, node: exp.Expression, *args: exp.Expression) -> exp.Anonymous:
    raises = any(sig.startswith(f"{name}(") and "error(" in body for sig, body in MACROS.items())
    if raises and _in_try(node):
        _guard(name, node, args)
    return _fn(f"{name}_try" if raises and _in_try(node) else name, *args)


def _refused_macro(name: str) -> tuple[str, int] | None:
    """The `_refused` twin of a macro (the text of the error TRY must let through, else NULL) and its arity."""
    twin = f"{name if name.startswith('dw_') else 'dw_' + name}_refused"
    for signature in MACROS:
        if signature.startswith(f"{twin}("):
            return twin, len(signature.partition("(")[2].split(","))
    return None


def _guard(name: str, node: exp.Expression, args: tuple[exp.Expression, ...]) -> None:
    """Inside TRY, a macro's refusal (or a Trino error TRY lets through) must still raise: its `_refused` twin is
    noted on the outermost TRY, which raises it outside DuckDB's TRY (`_guard_try`). Over a lambda's parameter the
    twin cannot be evaluated there: refused."""
    refused = _refused_macro(name)
    if refused is None:
        return
    twin, arity = refused
    outermost, lambdas, ancestor = None, [], node.parent
    while ancestor is not None:
        if isinstance(ancestor, exp.Try):
            outermost = ancestor
        elif isinstance(ancestor, exp.Lambda) and outermost is None:
            lambdas.append(ancestor)
        ancestor = ancestor.parent
    params = {p.name for fn in lambdas for p in fn.expressions}
    used = {n.name for a in args[:arity] for n in a.find_all(exp.Column, exp.Identifier)}
    if params & used:
        trino = node.sql_name() if not isinstance(node, exp.Anonymous) else node.name
        raise unsupported(
            f"{trino.lower()} over a lambda's parameter inside TRY(...)",
            "locally TRY turns dw's refusals of some values of it into NULL there; move TRY inside the lambda",
        )
    outermost.meta.setdefault("guards", []).append(_fn(twin, *(a.copy() for a in args[:arity])))


def _guard_try(node: exp.Try) -> exp.Expression:
    """TRY(x) with the refusals noted inside it (`_guard`): CASE WHEN one holds THEN error(it) ELSE TRY(x) END. TRY
    turns only some of Trino's errors into NULL (TryFunction#propagateIfUnhandled); a refusal must not become one."""
    guards = node.meta.pop("guards", None)
    if not guards:
        return node
    texts = [exp.Try(this=g) for g in guards]
    refusal = texts[0] if len(texts) == 1 else exp.Coalesce(this=texts[0], expressions=texts[1:])
    raised = exp.If(this=exp.Not(this=exp.Is(this=refusal, expression=exp.Null())), true=_fn("ERROR", refusal.copy()))
    return exp.Case(ifs=[raised], default=node)


def _raise_unless(node: exp.Expression, ok: exp.Expression, value: exp.Expression, message: exp.Expression):
    """`value` where `ok`, else Trino's error (NULL inside TRY)."""
    failure = exp.Null() if _in_try(node) else _fn("ERROR", message)
    return exp.Case(ifs=[exp.If(this=ok, true=value)], default=failure)


NUMERIC_TYPES = (*INTEGER_TYPES, DType.DECIMAL, DType.DOUBLE, DType.FLOAT)
# Trino functions that make arrays, which sqlglot's annotator may leave untyped.
ARRAY_MAKERS = (
    exp.Array, exp.Split, exp.RegexpSplit, exp.ArraySlice, exp.Transform, exp.ArrayFilter, exp.ArrayDistinct,
    exp.ArrayConcat, exp.ArraySort, exp.ArrayAgg, exp.Flatten, exp.GenerateSeries, exp.ArrayIntersect,
    exp.ArrayExcept, exp.ArrayRemove, exp.RegexpExtractAll, exp.MapKeys,
)  # fmt: skip
COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
OFFSET = re.compile(r"[+-]\d{2}:\d{2}")
ZONED_LITERAL = re.compile(
    r"\s*(\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,12})?)?)?)\s*(Z|[+-]\d{2}:\d{2}|[A-Za-z][\w/+-]*)?\s*"
)
ISO_OFFSET = re.compile(r".*T.*?(Z|[+-]\d{2}:?\d{2})$")
UTC_NAMES = {"utc", "z", "+00:00", "-00:00", "ut", "zulu", "gmt", "etc/utc", "etc/gmt"}


def _zone_name(zone: str) -> str:
    """Trino's spelling of a zone: UTC for the zero offsets, +hh:mm for an offset, else the id."""
    if zone.lower() in UTC_NAMES:
        return "UTC"
    if re.fullmatch(r"[+-]\d{4}", zone):
        zone = f"{zone[:3]}:{zone[3:]}"
    return zone


def _zone(node: exp.Expression) -> str | None:
    """The time zone of a `timestamp with time zone` value as Trino keeps it ('?' if only the
    data knows it); None for other types. DuckDB keeps instants only: the session zone, UTC."""
    while isinstance(node, exp.Paren):
        node = node.this
    if "zone" in node.meta:
        return node.meta["zone"]
    return "UTC" if _is(node, DType.TIMESTAMPTZ) else None


def _zoned(node: exp.Expression, zone: str, like: exp.Expression | None = None) -> exp.Expression:
    """Tag a DuckDB TIMESTAMPTZ with the zone Trino keeps, and the precision of `like` if known."""
    node.meta["zone"] = zone
    source = (like if like is not None else node).type
    params = (
        [p.copy() for p in source.expressions]
        if source is not None and source.is_type(DType.TIMESTAMP, DType.TIMESTAMPTZ)
        else []
    )
    node.type = exp.DataType(this=DType.TIMESTAMPTZ, expressions=params)
    return node


def _duck_zone(zone: str) -> str:
    """A zone DuckDB's ICU knows: +02:00 is Etc/GMT-2."""
    if match := re.fullmatch(r"([+-])(\d{2}):(\d{2})", zone):
        sign, hours, minutes = match.groups()
        if minutes != "00":
            raise unsupported(f"the time zone offset {zone}", "only whole-hour offsets convert locally")
        return f"Etc/GMT{'-' if sign == '+' else '+'}{int(hours)}"
    return zone


def _local(value: exp.Expression, zone: str) -> exp.Expression:
    """The wall-clock time of a zoned instant in its zone (what Trino's field functions read)."""
    local = _fn("TIMEZONE", exp.Literal.string(_duck_zone(zone)), value)
    local.type = exp.DataType.build("TIMESTAMP")
    return local


# Consumers of a zoned value that read its wall clock: given the local time, they answer as Trino.
WALL_CLOCK = (
    exp.Year, exp.Month, exp.Day, exp.Hour, exp.Minute, exp.Second, exp.Quarter, exp.DayOfWeekIso,
    exp.DayOfWeek, exp.DayOfYear, exp.DayOfMonth, exp.WeekOfYear, exp.TimeToStr, exp.Extract,
)  # fmt: skip
# Consumers that read the instant only.
INSTANT = (*COMPARISONS, exp.NullSafeEQ, exp.NullSafeNEQ, exp.Between, exp.TimeToUnix, exp.AtTimeZone, exp.Ordered)


def _check_zones(node: exp.Expression) -> None:
    """A zoned value in a zone other than UTC goes only where its zone is known to be kept."""
    for child in list(node.iter_expressions()):
        zone = _zone(child)
        if zone in (None, "UTC"):
            continue
        if isinstance(node, (INSTANT, exp.Paren)):
            continue
        if isinstance(node, exp.Alias) and _top_level(node):
            if zone == "?":
                raise unsupported(
                    "from_iso8601_timestamp of a column in the result",
                    "Trino keeps each value's own offset, which DuckDB drops",
                )
            continue
        if zone != "?" and (
            isinstance(node, WALL_CLOCK)
            or (isinstance(node, exp.Anonymous) and node.name.lower() in ("format_datetime", "to_iso8601"))
            or (isinstance(node, exp.Cast) and not node.to.is_type(DType.TIMESTAMPTZ))
        ):
            continue
        what = f"a timestamp with time zone {zone}" if zone != "?" else "from_iso8601_timestamp of a column"
        raise unsupported(
            f"{what} in {node.key.upper()}",
            "DuckDB keeps instants in UTC only; locally such a value may only be selected, compared, formatted "
            "or have its fields read",
        )


def _localize(node: exp.Expression) -> exp.Expression:
    """Field functions, formats and casts of a value zoned other than UTC read its wall clock in
    its zone; CAST(... AS varchar) also names the zone, as Trino does."""
    for child in list(node.iter_expressions()):
        zone = _zone(child)
        if zone in (None, "UTC", "?") or isinstance(node, (*INSTANT, exp.Alias, exp.Paren)):
            continue
        if isinstance(node, exp.Anonymous) and node.name.lower() == "to_iso8601":
            continue
        if isinstance(node, exp.Cast) and node.to.is_type(*exp.DataType.TEXT_TYPES):
            precision = child.type.expressions[0].this.to_py() if child.type and child.type.expressions else 3
            fraction = {0: "", 3: ".%g", 6: ".%f"}.get(precision, ".%g")
            text = _fn(
                "STRFTIME",
                _local(child, zone),
                exp.Literal.string(f"%Y-%m-%d %H:%M:%S{fraction} {zone.replace('%', '%%')}"),
            )
            return text
        index = child.index if isinstance(node.args.get(child.arg_key), list) else None
        node.set(child.arg_key, _local(child, zone), index)
    return node


def _top_level(alias: exp.Alias) -> bool:
    select = alias.parent
    return isinstance(select, exp.Select) and select.parent is None and alias.arg_key == "expressions"


def _timestamp_literal(node: exp.Cast) -> exp.Expression:
    """TIMESTAMP '2024-01-01 10:00:00 America/New_York' keeps its zone in Trino; DuckDB reads no
    offsets such as +02:00 and keeps UTC instants."""
    text = node.this.name
    match = ZONED_LITERAL.fullmatch(text)
    if not match:
        return node
    local, zone = match.groups()
    if re.fullmatch(r".*[ T]\d{1,2}:\d{2}", local):
        local += ":00"  # DuckDB reads no HH:MM without seconds
    if not zone:
        return _zoned(node, "UTC")  # the session zone
    zone = _zone_name(zone)
    if zone == "UTC" or OFFSET.fullmatch(zone):
        value = _as(exp.Literal.string(f"{local}{'+00:00' if zone == 'UTC' else zone}"), "TIMESTAMPTZ")
    else:
        value = _fn("TIMEZONE", exp.Literal.string(zone), _as(exp.Literal.string(local), "TIMESTAMP"))
    return _zoned(value, zone, like=node)


def _iso8601_timestamp(node: exp.FromISO8601Timestamp) -> exp.Expression:
    """from_iso8601_timestamp keeps the string's offset as the value's zone (UTC without one)."""
    value = node.this
    if isinstance(value, exp.Literal) and value.is_string:
        match = ISO_OFFSET.fullmatch(value.name.strip())
        return _zoned(node, _zone_name(match.group(1)) if match else "UTC")
    return _zoned(node, "?")


def _at_time_zone(node: exp.AtTimeZone) -> exp.Expression:
    """ts AT TIME ZONE 'zone': the same instant shown in that zone. A plain timestamp is first read
    in the session zone (UTC), where DuckDB reads it as wall-clock time in the target zone."""
    zone = node.args.get("zone")
    if not (isinstance(zone, exp.Literal) and zone.is_string):
        raise unsupported("AT TIME ZONE with a zone that is not a string literal", "the zone must be known")
    value = original = node.this
    if _is(value, DType.TIMESTAMP, DType.DATE):
        value = _as(value, "TIMESTAMPTZ")
    return _zoned(value, _zone_name(zone.name), like=original)


def _unix_to_time(node: exp.UnixToTime) -> exp.Expression:
    """from_unixtime(x[, zone | hours, minutes]) is a timestamp(3) with time zone, in that zone."""
    zone, hours, minutes = node.args.get("zone"), node.args.get("hours"), node.args.get("minutes")
    value = _fn("TO_TIMESTAMP", node.this)
    if zone is None and hours is None:
        return _zoned(value, "UTC")
    if zone is not None and isinstance(zone, exp.Literal) and zone.is_string:
        return _zoned(value, _zone_name(zone.name))
    if hours is not None and all(isinstance(a, exp.Literal) for a in (hours, minutes) if a is not None):
        h, m = int(hours.name), int(minutes.name) if minutes is not None else 0
        sign = "-" if h < 0 or m < 0 else "+"
        return _zoned(value, _zone_name(f"{sign}{abs(h):02d}:{abs(m):02d}"))
    raise unsupported("from_unixtime with a zone that is not a literal", "the zone must be known")


def _lambda_over(fn: exp.Lambda, params: dict[str, exp.Expression]) -> exp.Expression:
    """The body of a Trino lambda with its parameters replaced (k -> e.key)."""
    body = fn.this.copy()

    def swap(n: exp.Expression) -> exp.Expression:
        name = n.name if isinstance(n, exp.Identifier | exp.Column) and not getattr(n, "table", "") else None
        if name in params and not isinstance(n.parent, exp.Column | exp.Dot):
            return params[name].copy()
        return n

    return body.transform(swap)


def _reduce(node: exp.Reduce) -> exp.Expression:
    """reduce(array, initial, (s, x) -> merge, s -> finish): DuckDB's list_reduce with the initial state, then the
    output function over its result. Trino has no three-argument reduce."""
    finish, merge = node.args.get("finish"), node.args.get("merge")
    if finish is None:
        raise QueryError(
            'Athena has no three-argument reduce ("Unexpected parameters for function reduce"): add the output '
            "function, e.g. reduce(a, 0, (s, x) -> s + x, s -> s)"
        )
    if not (isinstance(finish, exp.Lambda) and len(finish.expressions) == 1 and isinstance(merge, exp.Lambda)):
        raise unsupported("reduce with these functions", "dw rewrites reduce(a, s0, (s, x) -> ..., s -> ...) only")
    state = _fn("LIST_REDUCE", node.this, merge, node.args["initial"])
    return _lambda_over(finish, {finish.expressions[0].name: state})


def _entry(name: str) -> exp.Expression:
    return exp.Dot(this=exp.column("__e"), expression=exp.to_identifier(name))


def _lambda(body: exp.Expression, *names: str) -> exp.Lambda:
    return exp.Lambda(this=body, expressions=[exp.to_identifier(n) for n in names])


def _map_lambda(node: exp.Anonymous) -> exp.Expression:
    """map_filter / transform_values / transform_keys over map_entries (DuckDB has list lambdas)."""
    name = node.name.lower()
    mapping, fn = node.expressions
    if not isinstance(fn, exp.Lambda) or len(fn.expressions) != 2:
        raise unsupported(name, "its second argument must be a lambda (k, v) -> ...")
    k, v = (p.name for p in fn.expressions)
    body = _lambda_over(fn, {k: _entry("key"), v: _entry("value")})
    entries = _fn("MAP_ENTRIES", mapping)
    if name == "map_filter":
        return _fn("MAP_FROM_ENTRIES", _fn("LIST_FILTER", entries, _lambda(body, "__e")))
    key, value = (body, _entry("value")) if name == "transform_keys" else (_entry("key"), body)
    struct = exp.Struct(
        expressions=[exp.PropertyEQ(this=exp.to_identifier("key"), expression=key),
                     exp.PropertyEQ(this=exp.to_identifier("value"), expression=value)]
    )  # fmt: skip
    return _fn("MAP_FROM_ENTRIES", _fn("LIST_TRANSFORM", entries, _lambda(struct, "__e")))


def _zip(node: exp.Anonymous) -> exp.Expression:
    """zip(a, b, ...) is array(row(field0, field1, ...)), padded with NULLs; zip_with applies a lambda."""
    name = node.name.lower()
    args = list(node.expressions)
    fn = args.pop() if name == "zip_with" else None
    zipped = _fn("LIST_ZIP", *args)
    field = lambda i: _fn("STRUCT_EXTRACT", exp.column("__z"), exp.Literal.number(i + 1))  # noqa: E731
    if fn is None:
        struct = exp.Struct(
            expressions=[
                exp.PropertyEQ(this=exp.to_identifier(f"field{i}"), expression=field(i)) for i in range(len(args))
            ]
        )
        return _fn("LIST_TRANSFORM", zipped, _lambda(struct, "__z"))
    if not isinstance(fn, exp.Lambda) or len(fn.expressions) != 2:
        raise unsupported("zip_with", "its third argument must be a lambda (x, y) -> ...")
    x, y = (p.name for p in fn.expressions)
    return _fn("LIST_TRANSFORM", zipped, _lambda(_lambda_over(fn, {x: field(0), y: field(1)}), "__z"))


def _to_iso8601(node: exp.Anonymous) -> exp.Expression:
    """to_iso8601: 2024-01-02, 2024-01-02T03:04:05.000, 2024-01-02T03:04:05.000Z (or +02:00)."""
    value = node.expressions[0]
    if _is(value, DType.DATE):
        return _fn("STRFTIME", value, exp.Literal.string("%Y-%m-%d"))
    zone = _zone(value)
    if _is(value, DType.TIMESTAMP):
        return _fn("STRFTIME", value, exp.Literal.string("%Y-%m-%dT%H:%M:%S.%g"))
    if zone == "UTC":
        return _fn("STRFTIME", value, exp.Literal.string("%Y-%m-%dT%H:%M:%S.%gZ"))
    if zone and OFFSET.fullmatch(zone):
        return _fn("STRFTIME", _local(value, zone), exp.Literal.string(f"%Y-%m-%dT%H:%M:%S.%g{zone}"))
    raise unsupported(
        "to_iso8601 of this value", "only dates, timestamps and zoned timestamps at UTC or a fixed offset"
    )


def _format(node: exp.Format) -> exp.Expression:
    """Trino's format is Java's String.format; %s of text and %d of integers read the same in printf."""
    fmt, args = node.this, node.expressions
    if not (isinstance(fmt, exp.Literal) and fmt.is_string):
        raise unsupported("format with a pattern that is not a string literal", "the pattern must be known")
    specs = re.findall(r"%(.)", fmt.name.replace("%%", ""))
    if len(specs) != len(args) or any(
        not ((s == "s" and _text_type(a)) or (s == "d" and _is(a, *INTEGER_TYPES)))
        for s, a in zip(specs, args, strict=True)
    ):
        raise unsupported(
            f"format({fmt.sql(dialect=READ_DIALECT)}, ...)",
            "locally only %s of varchar and %d of integer arguments format as Java's String.format does",
        )
    return _fn("PRINTF", fmt, *args)


def _java_replacement(text: str, groups: int | None) -> str:
    """A Java regex replacement ($1, \\$) as RE2's (\\1, \\\\ for a backslash), given the pattern's group count
    (None: not known). As Java and Trino read `$nn`: the first digit, then each next digit while the number is
    still a group (`$10` is group 10 of ten groups, else group 1 then `0`; `$01` is group 1); a group the
    pattern does not have is an error."""
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append("\\\\" if text[i + 1] == "\\" else text[i + 1])
            i += 2
        elif char == "$":
            digits = re.match(r"\d+", text[i + 1 :])
            if text[i + 1 : i + 2] == "{":
                raise unsupported(f"the regexp_replace replacement {text!r}", "named group references do not convert")
            if not digits:
                raise QueryError(
                    f"regexp_replace replacement {text!r}: Illegal group reference (Athena rejects it too)"
                )
            if groups is None and len(digits.group()) > 1:
                raise unsupported(
                    f"the regexp_replace replacement {text!r}", "which group $nn names depends on the pattern's groups"
                )
            group, used = int(digits.group()[0]), 1
            while (
                groups is not None and used < len(digits.group()) and group * 10 + int(digits.group()[used]) <= groups
            ):
                group, used = group * 10 + int(digits.group()[used]), used + 1
            if groups is not None and group > groups:
                raise QueryError(f"regexp_replace replacement {text!r}: No group {group} (Athena rejects it too)")
            if group > 9:
                raise unsupported(f"the regexp_replace replacement {text!r}", "DuckDB refers to groups 0-9 only")
            out.append("\\" + str(group))
            i += 1 + used
        elif char == "\\":
            raise QueryError(f"regexp_replace replacement {text!r} ends with a lone backslash (Athena rejects it too)")
        else:
            out.append(char)
            i += 1
    return "".join(out)


# In a pattern Python cannot compile: a quantifier that allows none, an anchor or boundary, an empty alternative.
MAY_MATCH_EMPTY = re.compile(r"\*|(?<!\()\?|\{0|\\[zZAbBG]|[\^$]|(^|[(|])\||\|($|\))")
# Strings an empty match of a pattern is looked for in (a word boundary matches empty only beside a letter).
EMPTY_MATCH_PROBES = ("", "a", "ab", " a ", "a1 ", "\n")


def _pattern(node: exp.Expression) -> re.Pattern | None:
    """A literal pattern compiled as Python reads it (close to Java's and RE2's for what both accept); None for a
    pattern that is not a literal or that Python does not read (`\\p{L}`)."""
    if not (isinstance(node, exp.Literal) and node.is_string):
        return None
    try:
        return re.compile(node.name)
    except (re.error, OverflowError):
        return None


def _refuse_empty_matches(pattern: exp.Expression, construct: str, *, empty_pattern_differs: bool = False) -> None:
    """Java finds an empty match right after a match (`x*` in `xx`: `xx`, then `` at 2); RE2 skips it. Where that
    changes the answer, a pattern that can match empty text is refused; the empty pattern itself too where
    DuckDB's function treats it apart (`empty_pattern_differs`: regexp_split, regexp_position)."""
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        return
    compiled = _pattern(pattern)
    if compiled is None:
        # RE2 syntax Python does not read (\p{L}, \x{61}, \z): refused where anything in it may match empty text
        empty = bool(MAY_MATCH_EMPTY.search(pattern.name))
    elif not compiled.pattern:
        empty = empty_pattern_differs
    else:
        empty = any(m.start() == m.end() for probe in EMPTY_MATCH_PROBES for m in compiled.finditer(probe))
    if empty:
        raise unsupported(
            f"{construct} with the pattern {pattern.name!r}, which {'may' if compiled is None else 'can'} match "
            "empty text",
            "Athena (Java) also counts an empty match right after a match, DuckDB (RE2) does not; use a pattern "
            "that matches at least one character (x+ for x*)",
        )


def _regexp_replace(node: exp.RegexpReplace) -> exp.Expression:
    replacement = node.args.get("replacement")
    if replacement is None:
        return node
    if isinstance(replacement, exp.Lambda):
        raise unsupported("regexp_replace with a lambda", "DuckDB has no lambda replacement")
    if not (isinstance(replacement, exp.Literal) and replacement.is_string):
        raise unsupported("regexp_replace with a replacement that is not a string literal", "its $n syntax is Java's")
    if replacement.name:  # an empty replacement of an empty match changes nothing either way
        _refuse_empty_matches(node.expression, "regexp_replace")
    compiled = _pattern(node.expression)
    groups = compiled.groups if compiled is not None else None
    node.set("replacement", exp.Literal.string(_java_replacement(replacement.name, groups)))
    return node


def _regexp_count(node: exp.RegexpCount) -> exp.Expression:
    """regexp_count is the number of matches regexp_extract_all finds (sqlglot's DuckDB text says 0 for an empty
    pattern, which Trino finds at every position: 5 in `abcd`)."""
    _refuse_empty_matches(node.expression, "regexp_count")
    found = exp.RegexpExtractAll(this=node.this, expression=node.expression)
    return exp.Cast(this=exp.ArraySize(this=found), to=exp.DataType.build("BIGINT"))


def _date_parse(node: exp.StrToTime) -> exp.Expression:
    """date_parse: fields left out default to 1970-01-01 00:00 (DuckDB: 1900); %h without %p is
    an AM hour (12 is 0); %y reads 70-99 as 19xx and 00-69 as 20xx (DuckDB: 69 is 1969)."""
    fmt = node.args.get("format")
    if not (isinstance(fmt, exp.Literal) and fmt.is_string):
        raise unsupported("date_parse with a format that is not a string literal", "the format must be known")
    pattern = fmt.name
    value: exp.Expression = node
    if "%I" in pattern and "%p" not in pattern:
        twelve = exp.EQ(this=exp.Hour(this=node.copy()), expression=exp.Literal.number(12))
        value = exp.Case(
            ifs=[exp.If(this=twelve, true=exp.Sub(this=node.copy(), expression=_interval(12, "HOUR")))], default=value
        )
    if not any(f in pattern for f in ("%Y", "%y", "%G")):
        value = exp.Add(this=exp.paren(value), expression=_interval(70, "YEAR"))
    elif "%y" in pattern:
        is_1969 = exp.EQ(this=exp.Year(this=value.copy()), expression=exp.Literal.number(1969))
        value = exp.Case(
            ifs=[exp.If(this=is_1969, true=exp.Add(this=exp.paren(value.copy()), expression=_interval(100, "YEAR")))],
            default=value,
        )
    if "%f" in pattern:  # date_parse is a timestamp(3): the fraction is cut to milliseconds
        value = _fn("DATE_TRUNC", exp.Literal.string("millisecond"), value)
    return value


def _interval(n: int, unit: str) -> exp.Interval:
    return exp.Interval(this=exp.Literal.number(n), unit=exp.var(unit))


def _sequence(node: exp.GenerateSeries) -> exp.Expression:
    """sequence counts down when start > stop (DuckDB: empty) and keeps dates dates."""
    start, stop, step = node.args.get("start"), node.args.get("end"), node.args.get("step")
    if _is(start, DType.DATE) and _is(stop, DType.DATE):
        if step is None:
            return _fn("dw_date_sequence", start, stop)
        raise unsupported("sequence of dates with a step", "DuckDB steps dates through timestamps")
    if _is(start, DType.TIMESTAMP, DType.TIMESTAMPTZ, DType.DATE):
        raise unsupported("sequence of timestamps", "DuckDB's interval steps differ from Trino's")
    if step is None:
        return _fn("dw_sequence", start, stop)
    return _macro("dw_sequence3", node, start, stop, step)


def _bracket(node: exp.Bracket) -> exp.Expression:
    """a[i] raises past the end in Trino ('Array subscript must be less than or equal to array
    length'), m[k] raises for a missing key; element_at gives NULL for both (DuckDB: NULL always)."""
    (index,) = Dialect.get_or_raise(WRITE_DIALECT).generator().bracket_offset_expressions(node) or [None]
    if index is None or len(node.expressions) != 1:
        return node
    target = node.this
    if (
        node.args.get("safe")
        and not (isinstance(index, exp.Literal) and index.name == "0")
        and not _is(target, DType.ARRAY)
    ):
        return node  # element_at: NULL for a missing key or index, in both
    if _is(target, DType.MAP):
        return node if node.args.get("safe") else _macro("dw_map_key", node, target, index)
    if _is(target, DType.ARRAY) or isinstance(target, exp.Array | exp.Split | exp.RegexpSplit | exp.ArraySlice):
        return _macro("dw_element_at" if node.args.get("safe") else "dw_subscript", node, target, index)
    if _is(target, DType.STRUCT):
        return node
    raise unsupported(
        "a subscript of a value of unknown type",
        "dw cannot tell an array (a position) from a map (a key) here; CAST the value to its array or map type",
    )


def _unnest(node: exp.Unnest) -> exp.Expression:
    """UNNEST(a, b) pads the shorter array with NULLs; UNNEST(map) gives key and value columns;
    WITH ORDINALITY numbers the rows. DuckDB's UNNEST takes one list."""
    args = list(node.expressions)
    ordinality = node.args.get("offset")
    if len(args) == 1 and not _is(args[0], DType.MAP):
        return node
    # A value of unknown type is taken for an array: were it a map, DuckDB's UNNEST fails loudly.
    columns, lengths = [], []
    for a in args:
        if _is(a, DType.MAP):
            columns += [_fn("UNNEST", _fn("MAP_KEYS", a.copy())), _fn("UNNEST", _fn("MAP_VALUES", a.copy()))]
        else:
            columns.append(_fn("UNNEST", a.copy()))
        lengths.append(
            _fn("COALESCE", _fn("CARDINALITY" if _is(a, DType.MAP) else "LEN", a.copy()), exp.Literal.number(0))
        )
    if ordinality:
        longest = _as(lengths[0] if len(lengths) == 1 else _fn("GREATEST", *lengths), "BIGINT")
        columns.append(
            _fn("UNNEST", _fn("RANGE", exp.Literal.number(1), exp.Add(this=longest, expression=exp.Literal.number(1))))
        )
    alias = node.args.get("alias")
    subquery = exp.Subquery(this=exp.select(*columns), alias=alias.copy() if alias else None)
    named_ordinality = isinstance(ordinality, exp.Identifier)
    if alias is not None and named_ordinality and len(alias.columns) == len(columns) - 1:
        subquery.args["alias"].append("columns", ordinality.copy())
    return subquery


def _decimal_arithmetic(node: exp.Mul | exp.Add | exp.Sub) -> exp.Expression | None:
    """decimal * + - keep Trino's result type: an integer operand is a decimal(10, 0) (bigint:
    (19, 0)); a product is decimal(p1 + p2, s1 + s2), a sum decimal(1 + max(s) + max(p - s), max(s)).
    DuckDB sizes literals to fit and keeps small products in 18 digits."""
    left, right = _decimal_type(node.this), _decimal_type(node.expression)
    if (
        left is None
        or right is None
        or not all(_is_decimal(s) or _is(s, *INTEGER_TYPES) or _int_literal(s) for s in (node.this, node.expression))
    ):
        return None
    (p1, s1), (p2, s2) = left, right
    if isinstance(node, exp.Mul):
        precision, scale = min(38, p1 + p2), s1 + s2
    else:
        scale = max(s1, s2)
        precision = min(38, 1 + scale + max(p1 - s1, p2 - s2))
    for side, (p, _) in ((node.this, left), (node.expression, right)):
        if not _is_decimal(side):
            node.set(side.arg_key, _as(side, f"DECIMAL({p}, 0)"))
    return _as(node, f"DECIMAL({precision}, {scale})")


def _kind(node: exp.Expression) -> str | None:
    if _text_type(node):
        return "varchar"
    if _is(node, *NUMERIC_TYPES):
        return "number"
    if _is(node, DType.DATE, DType.TIMESTAMP, DType.TIMESTAMPTZ):
        return "date or timestamp"
    if _is(node, DType.BOOLEAN):
        return "boolean"
    return None


def _same_kind(values: list[exp.Expression], athena_says: str, fix: str, *, known: bool = False) -> None:
    """Athena's error where values of different kinds meet, which DuckDB would convert silently; with `known`,
    a value of a type dw cannot tell meeting one of a known kind is refused."""
    kinds = {k for k in map(_kind, values) if k}
    unknown = [v for v in values if _unknown(v)]
    if known and kinds and unknown:
        raise unsupported(
            f"comparing {unknown[0].sql(dialect=READ_DIALECT)}, whose type dw cannot tell, with a {min(kinds)}",
            f'Athena raises "{athena_says}" where the kinds differ and DuckDB converts silently; '
            "CAST it to its type first, e.g. CAST(... AS varchar)",
        )
    if len(kinds) > 1:
        types = ", ".join(sorted({v.type.sql(dialect=READ_DIALECT).lower() for v in values if _kind(v)}))
        raise QueryError(f'Athena rejects this mix of {types} ("{athena_says}"): {fix} (DuckDB would convert silently)')


def _refuse_unknown(node: exp.Expression, operands: tuple, what: str, why: str) -> None:
    """Refuse `what` over an operand whose type dw does not know (a function sqlglot does not type), unless
    another operand is a double, which makes it a double operation in both engines."""
    if any(_is(o, DType.DOUBLE, DType.FLOAT) for o in operands):
        return
    for operand in operands:
        if _unknown(operand):
            raise unsupported(
                f"{what} over {operand.sql(dialect=READ_DIALECT)}, whose type dw cannot tell",
                f"Trino's answer depends on it ({why}); CAST it to its type first, e.g. CAST(... AS bigint)",
            )


FLOATS = (DType.DOUBLE, DType.FLOAT)
STRUCTURED = (DType.ARRAY, DType.MAP, DType.STRUCT, DType.JSON)


def _compare(node: exp.Expression) -> exp.Expression | None:
    """Comparisons whose DuckDB namesakes differ: arrays and maps with NULL elements (indeterminate in Trino,
    equal in DuckDB), maps in another key order (equal in Trino), doubles with NaN (equal to nothing in Trino,
    equal to itself and above everything in DuckDB). None: DuckDB's comparison is Trino's."""
    left, right = node.this, node.expression
    sides = (left, right)
    if any(_is(side, DType.ARRAY, DType.MAP) for side in sides):
        kind = DType.MAP if any(_is(side, DType.MAP) for side in sides) else DType.ARRAY
        parts = [
            t
            for side in sides
            if _is(side, kind)
            for t in ([_element(side.type)] if kind == DType.ARRAY else _key_value(side.type))
        ]
        known = [t for t in parts if t is not None]
        name = "map" if kind == DType.MAP else "array"
        if not known or len(known) < len(parts) and any(t.is_type(*STRUCTURED) for t in known):
            raise unsupported(
                f"comparing {name}s whose element type dw cannot tell",
                "Trino compares them element by element, NULL elements making = unknown; CAST them to their type",
            )
        if any(t.is_type(*STRUCTURED) for t in known):
            raise unsupported(
                f"comparing {name}s of {known[0].sql(dialect=READ_DIALECT).lower()}",
                "Trino compares nested values with its own NULL rules, which DuckDB's comparison does not keep",
            )
        floats = any(t.is_type(*FLOATS) for t in known)
        if kind == DType.MAP:
            if floats:
                raise unsupported("comparing maps of doubles", "Trino's NaN equals nothing, DuckDB's equals itself")
            if isinstance(node, exp.NullSafeEQ | exp.NullSafeNEQ):
                distinct = _fn("dw_map_distinct", left, right)
                return distinct if isinstance(node, exp.NullSafeNEQ) else exp.Not(this=exp.paren(distinct))
            if isinstance(node, exp.EQ | exp.NEQ):
                equal = _fn("dw_map_eq", left, right)
                return equal if isinstance(node, exp.EQ) else exp.Not(this=equal)
            return None  # maps are not orderable: sqlglot and DuckDB fail on their own
        if isinstance(node, exp.EQ | exp.NEQ):
            equal = _fn("dw_array_eq_nan" if floats else "dw_array_eq", left, right)
            return equal if isinstance(node, exp.EQ) else exp.Not(this=equal)
        if isinstance(node, exp.GT | exp.GTE | exp.LT | exp.LTE):
            if floats:
                raise unsupported("ordering arrays of doubles", "Trino's NaN compares as nothing, DuckDB's as largest")
            return _macro("dw_array_order", node, left.copy(), right.copy(), node)
        return None
    if isinstance(node, COMPARISONS) and any(_is(side, *FLOATS) and not _is_decimal(side) for side in sides):
        result = _fn("dw_nan_compare", left.copy(), right.copy(), node, exp.Boolean(this=isinstance(node, exp.NEQ)))
        result.type = exp.DataType.build("BOOLEAN")
        return result
    return None


def _sort_by(node: exp.ArraySort) -> exp.Expression:
    """array_sort(a, (x, y) -> ...) through the comparator's values over every pair (`dw_sort_by`)."""
    fn, array = node.args["expression"], node.this
    if len(fn.expressions) != 2:
        raise QueryError("array_sort's comparator takes two arguments, (x, y) -> ... (Athena rejects it too)")
    x, y = (p.name for p in fn.expressions)
    at = lambda i: _fn("LIST_EXTRACT", array.copy(), exp.column(i))  # noqa: E731
    compared = exp.Case(
        ifs=[exp.If(this=exp.EQ(this=exp.column("dw_ci"), expression=exp.column("dw_cj")), true=exp.Literal.number(0))],
        default=_lambda_over(fn, {x: at("dw_ci"), y: at("dw_cj")}),
    )
    indexes = _fn(
        "RANGE", exp.Literal.number(1), exp.Add(this=_fn("LEN", array.copy()), expression=exp.Literal.number(1))
    )
    row = _fn("LIST_TRANSFORM", indexes.copy(), _lambda(compared, "dw_cj"))
    matrix = _fn("LIST_TRANSFORM", indexes, _lambda(row, "dw_ci"))
    return _macro("dw_sort_by", node, array, matrix)


def _nested_order(array: exp.Expression, name: str) -> bool:
    """True when `name` sorts arrays of arrays (of scalars), whose comparison raises where a NULL element comes
    first (`dw_array_sort`); arrays of maps, rows or deeper arrays are refused."""
    element = _element(array.type)
    if element is None or not element.is_type(*STRUCTURED):
        if element is None and not _is(array, DType.ARRAY, DType.NULL) and not isinstance(array, exp.Null):
            raise unsupported(
                f"{name} of {array.sql(dialect=READ_DIALECT)}, whose element type dw cannot tell",
                "Trino compares arrays element by element and raises on a NULL element; CAST it to its array type",
            )
        return False
    inner = _element(element) if element.is_type(DType.ARRAY) else None
    literal = (
        array.expressions if isinstance(array, exp.Array) else []
    )  # ARRAY[ARRAY[2], ARRAY[nan()]]: typed by the first
    floats = any(
        _element(t) is not None and _element(t).is_type(*FLOATS) for t in [element, *(e.type for e in literal)]
    )
    if floats and name == "array_max":
        raise unsupported(
            "array_max of arrays of doubles",
            "Trino's array_max ranks an array holding NaN below the others, DuckDB above",
        )
    if inner is None or inner.is_type(*STRUCTURED):
        raise unsupported(
            f"{name} of array({element.sql(dialect=READ_DIALECT).lower()})",
            "Trino compares nested values with its own NULL rules, which DuckDB's ordering does not keep",
        )
    return True


def _float_elements(array: exp.Expression) -> bool:
    """An array of doubles or reals (ARRAY[nan(), NULL] too, which sqlglot leaves untyped)."""
    element = _element(array.type)
    literal = array.expressions if isinstance(array, exp.Array) else []
    return (element is not None and element.is_type(*FLOATS)) or any(_is(e, *FLOATS) for e in literal)


def _refuse_nested_equality(array: exp.Expression, name: str) -> None:
    """contains, array_position and array_remove find an element by Trino's equality, which is unknown where NULL
    elements of nested arrays, maps or rows meet (DuckDB's NULL equals NULL)."""
    element = _element(array.type)
    if element is not None and element.is_type(*STRUCTURED) and not element.is_type(DType.JSON):
        raise unsupported(
            f"{name} over array({element.sql(dialect=READ_DIALECT).lower()})",
            "Trino's equality of nested values is unknown where their NULL elements meet, and it raises or answers "
            "NULL there; DuckDB's NULL equals NULL",
        )


def _int_literal(node: exp.Expression) -> bool:
    while isinstance(node, exp.Paren | exp.Neg):
        node = node.this
    return isinstance(node, exp.Literal) and not node.is_string and node.name.lstrip("-").isdigit()


AGGREGATE_NAMES = {"list", "map_agg", "histogram", "count_if", "arbitrary", "any_value", "max_by", "min_by",
                   "bool_and", "bool_or", "every", "listagg", "string_agg", "checksum", "geometric_mean"}  # fmt: skip


def _decimal_literal(node: exp.Expression) -> bool:
    """A literal such as 1.5, a decimal in Trino (sqlglot: a double)."""
    return isinstance(node, exp.Literal) and not node.is_string and "e" not in node.name.lower() and "." in node.name


def _typeof(node: exp.Typeof) -> exp.Expression:
    """typeof is static in Trino: written from the type dw knows, in Trino's spelling. The query stays an
    aggregation when the argument is one (a bare literal would make typeof(count(*)) one row per input row)."""
    value = node.this
    name = _typeof_name(value)
    result: exp.Expression = exp.Literal.string(name)
    result.meta["typeof"] = True  # typeof's own type is varchar
    aggregate = any(
        isinstance(n, exp.AggFunc | exp.Filter) or (isinstance(n, exp.Anonymous) and n.name.lower() in AGGREGATE_NAMES)
        for n in value.walk()
    )
    if aggregate:
        result = exp.Case(
            ifs=[exp.If(this=exp.Is(this=exp.paren(value), expression=exp.Null()), true=result.copy())], default=result
        )
    result.type = exp.DataType.build("VARCHAR")
    return result


def _typeof_name(value: exp.Expression) -> str:
    if _is_decimal(value) and _decimal_type(value):
        return "decimal({},{})".format(*_decimal_type(value))
    if value.type is None or value.type.is_type(DType.UNKNOWN) or _decimal_literal(value):
        raise unsupported("typeof of this expression", "dw does not know its Trino type")
    if isinstance(value, exp.Literal) and value.is_string:
        return "varchar" if value.meta.get("typeof") else f"varchar({len(value.name)})"
    if _text_type(value) and not isinstance(value, exp.Column | exp.Cast | exp.TryCast):
        raise unsupported(
            "typeof of a varchar expression other than a column, a literal or a CAST",
            "Trino types most string functions varchar(n), n from their arguments' lengths (upper('abc') is "
            "varchar(3)); dw does not track lengths",
        )
    if _is(value, DType.DOUBLE, DType.FLOAT) and any(_decimal_literal(n) for n in value.walk()):
        raise unsupported(
            "typeof of an expression over a decimal literal such as 1.5",
            "Trino keeps it a decimal where sqlglot's types say double",
        )
    name = value.type.sql(dialect="trino").lower()
    if re.search(r"\b(array|map|row)\b(?!\()", name):
        raise unsupported("typeof of this expression", f"dw knows only that it is {name}, not its element types")
    if "interval" in name:
        if any(_unit(i) in ("YEAR", "MONTH", "QUARTER") for i in value.find_all(exp.Interval)):
            raise unsupported("typeof of an interval year to month", "dw keeps intervals as days")
        name = re.sub(r"\binterval\b", "interval day to second", name)
    return re.sub(r"\btimestamp\b(?!\()", "timestamp(3)", name)  # Trino's default precision


def _refuse_upfront(node: exp.Expression) -> None:
    """Constructs refused whatever their arguments, checked before their arguments are translated."""
    _refuse_re2_rejects(node)
    for replace in node.find_all(exp.RegexpReplace):
        if isinstance(replace.args.get("replacement"), exp.Lambda):
            raise unsupported("regexp_replace with a lambda", "DuckDB has no lambda replacement")
    for struct in node.find_all(exp.Struct, exp.Tuple):
        named = isinstance(struct.parent, exp.Cast) and struct.parent.to.is_type(DType.STRUCT)
        if (
            isinstance(struct, exp.Struct)
            and not named
            and not all(isinstance(e, exp.PropertyEQ) for e in struct.expressions)
        ):
            raise unsupported(
                "an anonymous row value, ROW(...)", "Trino names its fields field0, field1, ... and DuckDB does not"
            )
        if (
            isinstance(struct, exp.Tuple)
            and struct.find_ancestor(exp.Lambda, exp.Select) is not None
            and isinstance(struct.find_ancestor(exp.Lambda, exp.Select), exp.Lambda)
        ):
            raise unsupported(
                "an anonymous row value (x, y) in a lambda",
                "Trino names its fields field0, field1, ... and DuckDB does not",
            )
    for call in node.find_all(exp.Anonymous):
        name = call.name.lower()
        arity = MACRO_ARITY.get(name)
        if arity is not None and len(call.expressions) != arity:
            raise unsupported(f"{name} with {len(call.expressions)} arguments", f"locally {name} takes {arity}")
    for dtype in node.find_all(exp.DataType):
        if dtype.is_type(DType.CHAR, DType.NCHAR):
            raise unsupported(
                "the char(n) type",
                "Trino pads and compares char(n) values in ways DuckDB, which has no char type, does not",
            )


# Trino's extract() fields, as DuckDB names them: Trino's DOW is ISO (1 Monday to 7 Sunday), DuckDB's 0 Sunday to
# 6; Trino's YOW is the ISO week's year.
EXTRACT_FIELDS = {
    "YEAR": "YEAR", "QUARTER": "QUARTER", "MONTH": "MONTH", "WEEK": "WEEK", "DAY": "DAY", "DAY_OF_MONTH": "DAY",
    "DAY_OF_WEEK": "ISODOW", "DOW": "ISODOW", "DAY_OF_YEAR": "DOY", "DOY": "DOY", "YEAR_OF_WEEK": "ISOYEAR",
    "YOW": "ISOYEAR", "HOUR": "HOUR", "MINUTE": "MINUTE", "SECOND": "SECOND", "TIMEZONE_HOUR": "TIMEZONE_HOUR",
    "TIMEZONE_MINUTE": "TIMEZONE_MINUTE",
}  # fmt: skip


def _extract(node: exp.Extract) -> exp.Expression:
    field = node.this.name.upper() if isinstance(node.this, exp.Var | exp.Identifier | exp.Column) else None
    if field not in EXTRACT_FIELDS:
        raise QueryError(
            f"extract({node.this.sql(dialect=READ_DIALECT)} FROM ...): Athena has no such field; use one of "
            f"{', '.join(EXTRACT_FIELDS)}"
        )
    node.set("this", exp.var(EXTRACT_FIELDS[field]))
    return node


def _json_path_tokens(path: str) -> list[str]:
    """The segments of a json_extract path as Trino's JsonPathTokenizer reads it: `$`, then `.name`
    (letters, digits, _ and :), `[name]` (letters, digits, _) or `["name"]`; anything else is an invalid path."""
    invalid = QueryError(f"Invalid JSON path: '{path}' (Athena rejects it too)")
    if not path.startswith("$"):
        raise invalid
    tokens, i = [], 1
    while i < len(path):
        if path[i] == ".":
            match = re.match(r"[\w:]+", path[i + 1 :])
            if not match:
                raise invalid
            tokens.append(match.group())
            i += 1 + len(match.group())
        elif path[i] == "[":
            if path[i + 1 : i + 2] == '"':
                match = re.match(r'((?:[^"\\]|\\["\\])*)"\]', path[i + 2 :])
                if not match:
                    raise invalid
                tokens.append(re.sub(r'\\(["\\])', r"\1", match.group(1)))
                i += 2 + len(match.group())
            else:
                match = re.match(r"(\w+)\]", path[i + 1 :])
                if not match:
                    raise invalid
                tokens.append(match.group(1))
                i += 1 + len(match.group())
        else:
            raise invalid
    return tokens


def _json_path(path: exp.Expression, value: exp.Expression) -> exp.Expression:
    """A json_extract path as DuckDB reads it. Each Trino segment is an object's key, or an array's index
    when it is a number (`$.1` and `$[1]` both are element 1 of an array and key "1" of an object)."""
    text = path.meta.get("path_text") if isinstance(path, exp.JSONPath) else None
    if text is None and isinstance(path, exp.Literal) and path.is_string:
        text = path.name
    if text is None:
        raise unsupported("a json_extract path that is not a string literal", "dw reads Trino's path syntax itself")
    pieces: list[exp.Expression] = []
    tail = "$"

    def joined() -> exp.Expression:
        items = pieces + ([exp.Literal.string(tail)] if tail else [])
        out = items[0]
        for item in items[1:]:
            out = exp.DPipe(this=out, expression=item)
        return out

    for token in _json_path_tokens(text):
        if '"' in token or "\\" in token:
            raise unsupported(f"the JSON path {text!r}", "DuckDB's path cannot name a key with a quote or backslash")
        key = f'."{token}"'
        if not token.isdigit():
            tail += key
            continue
        prefix = joined()
        is_array = exp.EQ(this=_fn("JSON_TYPE", value.copy(), prefix.copy()), expression=exp.Literal.string("ARRAY"))
        step = exp.Case(
            ifs=[exp.If(this=is_array, true=exp.Literal.string(f"[{int(token)}]"))], default=exp.Literal.string(key)
        )
        pieces, tail = [prefix, step], ""
    return joined()


# date_format's specifiers as sqlglot rewrites them into strftime's (Trino's %u is now %W, %W is %A, %c is %-m...).
MYSQL_SPECIFIERS = {"a", "A", "b", "B", "d", "-d", "f", "G", "H", "-H", "I", "-I", "j", "m", "-m", "M", "p", "S", "v",
                    "y", "Y", "%"}  # fmt: skip
MYSQL_UNSUPPORTED = {"D": "D", "U": "U", "W": "u", "V": "V", "w": "w", "X": "X"}  # as written in strftime: in Trino


def _mysql_format(node: exp.Expression, fmt: str) -> str | None:
    """date_format's pattern: %D, %U, %u, %V, %w and %X raise in Trino (DuckDB writes week numbers and weekdays),
    and any other unknown %x is the letter x itself (DuckDB rejects it). None: Trino's error inside TRY."""

    def one(match: re.Match) -> str:
        spec = match.group(1)
        if spec in MYSQL_UNSUPPORTED:
            raise QueryError(
                f"%{MYSQL_UNSUPPORTED[spec]} not supported in date format string (Athena raises it too; "
                "use day_of_week, week or year_of_week)"
            )
        if spec in MYSQL_SPECIFIERS:
            return match.group()
        return spec.lstrip("-").replace("%", "%%")

    try:
        return re.sub(r"%(-?.)", one, fmt)
    except QueryError:
        if _in_try(node):
            return None
        raise


def _log_base(base: exp.Expression) -> bool:
    """log(b, x) with a literal base above 1 (log10, log2): ln(x) / ln(b), so its sign is ln(x)'s."""
    try:
        return isinstance(base, exp.Literal) and not base.is_string and float(base.name) > 1
    except ValueError:
        return False


# Perl syntax Java reads and RE2 (DuckDB) rejects: lookaround, atomic groups, backreferences, possessive quantifiers.
RE2_REJECTS = re.compile(r"\(\?<?[=!]|\(\?>|(?<!\\)\\[1-9]|(?:(?<!\\)[*+?]|\{\d+(?:,\d*)?\})\+")
REGEXP_FUNCTIONS = (
    exp.RegexpLike, exp.RegexpExtract, exp.RegexpExtractAll, exp.RegexpReplace, exp.RegexpSplit, exp.RegexpCount,
)  # fmt: skip


def _refuse_re2_rejects(node: exp.Expression) -> None:
    """A pattern with Java regex syntax RE2 has not: refused by name, before DuckDB fails on it."""
    for call in node.find_all(*REGEXP_FUNCTIONS, exp.Anonymous):
        if isinstance(call, exp.Anonymous):
            if call.name.lower() != "regexp_position" or len(call.expressions) < 2:
                continue
            pattern = call.expressions[1]
        else:
            pattern = call.expression
        if isinstance(pattern, exp.Literal) and pattern.is_string and (found := RE2_REJECTS.search(pattern.name)):
            raise unsupported(
                f"the regular expression {pattern.name!r} ({found.group()!r}: lookaround, an atomic group, a "
                "backreference or a possessive quantifier)",
                "DuckDB's RE2 has no such syntax, which Athena's Java regular expressions read",
            )


def _fix_trino(node: exp.Expression) -> exp.Expression | None:
    """The fixes for Trino functions and operators whose DuckDB namesakes differ; None: no change."""
    if isinstance(node, exp.Try) and node.meta.get("guards"):
        return _guard_try(node)
    if isinstance(node, exp.ParseJSON):  # json_parse and JSON '...': Jackson's text, keys in order
        return _json_text(node, sort=True)
    if isinstance(node, exp.Extract):
        return _extract(node)
    if isinstance(node, exp.Sqrt | exp.Ln) or (
        isinstance(node, exp.Log) and node.args.get("expression") is not None and _log_base(node.this)
    ):
        # sqrt(-1) is NaN and ln(0) -Infinity in Trino (Java's Math); DuckDB raises.
        value = node.this if isinstance(node, exp.Sqrt | exp.Ln) else node.expression
        nan, minus_inf = _as(exp.Literal.string("NaN"), "DOUBLE"), _as(exp.Literal.string("-Infinity"), "DOUBLE")
        ifs = [exp.If(this=exp.LT(this=value.copy(), expression=exp.Literal.number(0)), true=nan)]
        if not isinstance(node, exp.Sqrt):
            ifs.insert(0, exp.If(this=exp.EQ(this=value.copy(), expression=exp.Literal.number(0)), true=minus_inf))
        result = exp.Case(ifs=ifs, default=node)
        result.type = exp.DataType.build("DOUBLE")
        return result
    if isinstance(node, exp.Acos | exp.Asin):
        # acos(2) is NaN in Trino (Java's Math); DuckDB raises.
        outside = exp.GT(this=_fn("ABS", node.this.copy()), expression=exp.Literal.number(1))
        result = exp.Case(ifs=[exp.If(this=outside, true=_as(exp.Literal.string("NaN"), "DOUBLE"))], default=node)
        result.type = exp.DataType.build("DOUBLE")
        return result
    if isinstance(node, exp.Cbrt):
        return _macro("dw_cbrt", node, node.this)
    # length(varbinary) counts bytes; DuckDB's length takes no BLOB.
    if isinstance(node, exp.Length) and (
        _is(node.this, DType.VARBINARY, DType.BINARY) or isinstance(node.this, exp.Encode)
    ):
        return _fn("OCTET_LENGTH", node.this)
    # date_format's %v is the ISO week and %x its year (MySQL's); DuckDB's strftime names them %V and %G.
    if isinstance(node, exp.TimeToStr) and isinstance(node.args.get("format"), exp.Literal):
        fmt = _mysql_format(node, node.args["format"].name)
        if fmt is None:
            return _as(exp.Null(), "VARCHAR")  # Trino's error, inside TRY
        fixed = re.sub(r"%(.)", lambda m: {"v": "%V", "x": "%G"}.get(m.group(1), m.group()), fmt)
        if fixed != node.args["format"].name:
            node.set("format", exp.Literal.string(fixed))
    if isinstance(node, (*COMPARISONS, exp.Between, exp.In)):
        # Trino has no implicit casts between text, numbers, dates and booleans: '1' = 1 and
        # d = '2024-01-31' fail in Athena ("Cannot apply operator"); DuckDB converts silently.
        sides = [
            node.this,
            *(
                node.expressions
                if isinstance(node, exp.In)
                else [node.args.get(k) for k in ("expression", "low", "high") if node.args.get(k) is not None]
            ),
        ]
        _same_kind(
            sides,
            "Cannot apply operator",
            "cast one side to the other's type, e.g. CAST(code AS integer) = 12 or d = DATE '2024-01-31'",
            known=True,
        )
    if isinstance(node, exp.Between) and any(
        _is(side, *FLOATS) and not _is_decimal(side) for side in (node.this, node.args["low"], node.args["high"])
    ):  # low <= value AND value <= high, each with Trino's NaN (DuckDB: 1 BETWEEN 0 AND NaN)
        low = exp.LTE(this=node.args["low"], expression=node.this.copy())
        high = exp.LTE(this=node.this, expression=node.args["high"])
        for side in (low, high):
            side.type = exp.DataType.build("BOOLEAN")
        return exp.paren(exp.and_(_compare(low) or low, _compare(high) or high), copy=False)
    if isinstance(node, exp.In) and _is(node.this, DType.ARRAY, DType.MAP) and node.expressions:
        # x IN (a, b) is x = a OR x = b, each with Trino's NULL-element rules
        tests = []
        for item in node.expressions:
            test = exp.EQ(this=node.this.copy(), expression=item)
            test.type = exp.DataType.build("BOOLEAN")
            tests.append(_compare(test) or test)
        return exp.paren(exp.or_(*tests), copy=False)
    if isinstance(node, (*COMPARISONS, exp.NullSafeEQ, exp.NullSafeNEQ)):
        compared = _compare(node)
        if compared is not None:
            return compared
    if isinstance(node, exp.Case | exp.Coalesce):
        # CASE branches and COALESCE arguments must share a type in Trino; DuckDB converts.
        values = [i.args.get("true") for i in node.args.get("ifs") or []] + [node.args.get("default")]
        if isinstance(node, exp.Coalesce):
            values = [node.this, *node.expressions]
        message = (
            "All COALESCE operands must be the same type"
            if isinstance(node, exp.Coalesce)
            else ("All CASE results must be the same type")
        )
        _same_kind([v for v in values if v is not None], message, "cast them to one type")
    if isinstance(node, exp.DPipe | exp.Concat) and not isinstance(node, exp.ConcatWs):
        args = [node.this, node.expression] if isinstance(node, exp.DPipe) else node.expressions
        known = [a for a in args if a.type is not None and not a.is_type(DType.UNKNOWN, DType.NULL)]
        if isinstance(node, exp.DPipe) and any(a.is_type(DType.ARRAY) for a in known) and len(known) == 2:
            left, right = node.this, node.expression  # array || element, element || array
            if left.is_type(DType.ARRAY) and not right.is_type(DType.ARRAY):
                return _fn("LIST_APPEND", left, right)
            if right.is_type(DType.ARRAY) and not left.is_type(DType.ARRAY):
                return _fn("LIST_PREPEND", left, right)
        if len(known) == len(args) and all(a.is_type(*exp.DataType.TEXT_TYPES) for a in known):
            return _as(node, "VARCHAR")  # DuckDB folds 'a' || CAST(NULL AS varchar) to an integer NULL
        if (
            len(known) == len(args)
            and all(a.is_type(DType.ARRAY) and _element(a.type) is not None for a in known)
            and all(a.type == known[0].type for a in known)
        ):
            return exp.Cast(this=node, to=known[0].type.copy())  # the same for arrays of one type
        if (
            known
            and not all(a.is_type(*exp.DataType.TEXT_TYPES) for a in known)
            and not all(a.is_type(DType.ARRAY) for a in known)
        ):
            types = ", ".join(a.type.sql(dialect=READ_DIALECT).lower() for a in known)
            raise QueryError(
                f'Athena rejects || and concat over ({types}) ("Unexpected parameters for function concat"): '
                "CAST the non-varchar value AS varchar first (DuckDB would convert silently)"
            )
    if isinstance(node, exp.Mul | exp.Add | exp.Sub | exp.Div | exp.Mod):
        # An integer literal is an integer in Trino, so SMALLINT '30000' * 2 is an integer, 60000; DuckDB sizes the
        # literal down to the other operand's tinyint or smallint, and overflows.
        for side, other in ((node.this, node.expression), (node.expression, node.this)):
            if (
                _int_literal(side)
                and -(2**31) <= int(side.sql(dialect=WRITE_DIALECT).replace(" ", "").strip("()")) < 2**31
                and _is(other, DType.TINYINT, DType.SMALLINT)
                and not _int_literal(other)
            ):
                widened = _as(side.copy(), "INTEGER")
                widened.type = exp.DataType.build("INT")
                node.set(side.arg_key, widened)
    if isinstance(node, exp.Mul | exp.Add | exp.Sub) and (_is_decimal(node.this) or _is_decimal(node.expression)):
        return _decimal_arithmetic(node)
    if isinstance(node, exp.Typeof):
        return _typeof(node)
    if isinstance(node, exp.BitwiseAnd | exp.BitwiseOr | exp.BitwiseXor | exp.BitwiseNot):
        return _as(node, "BIGINT")  # bitwise_and(bigint, bigint) and the like: bigints (DuckDB: the operands' type)
    if isinstance(node, exp.ArrayToString) and _is(node.this, DType.ARRAY):
        element = node.this.type.expressions[0] if node.this.type.expressions else None
        if element is not None and element.is_type(DType.DOUBLE, DType.FLOAT):
            # array_join writes each double as CAST(x AS varchar) does: 1.5E0 (DuckDB: 1.5).
            as_text = _fn("dw_double_varchar", exp.column("__x"))
            node.set("this", _fn("LIST_TRANSFORM", node.this, _lambda(as_text, "__x")))
            return node
        zoned = element is not None and element.is_type(DType.TIMESTAMP) and any(_zone(n) for n in node.this.walk())
        if element is not None and (element.is_type(DType.TIMESTAMPTZ) or zoned):
            raise unsupported("array_join of timestamps with a time zone", "each is written with its zone in Athena")
        if element is not None and element.is_type(DType.TIMESTAMP):
            # ... and each timestamp as CAST(x AS varchar): 2024-01-31 23:30:00.000 (DuckDB: no milliseconds)
            item = exp.column("__x")
            item.type = element.copy()
            cast = exp.Cast(this=item, to=exp.DataType.build("VARCHAR"))
            cast.type = exp.DataType.build("VARCHAR")
            node.set("this", _fn("LIST_TRANSFORM", node.this, _lambda(_fix_cast(cast), "__x")))
            return node
        if element is not None and element.is_type(*STRUCTURED) and not element.is_type(DType.JSON):
            raise QueryError(
                f'Athena rejects array_join over array({element.sql(dialect=READ_DIALECT).lower()}) ("Input type '
                'not supported"): its elements must cast to varchar (DuckDB would write them as text)'
            )
    # array_max / array_min are NULL when an element is; contains is NULL when no element
    # matches and one is NULL. DuckDB skips NULLs in all three.
    ordered = (
        node.this
        if isinstance(node, exp.Ordered | exp.Max | exp.Min)
        else node.expression
        if isinstance(node, exp.ArgMax | exp.ArgMin)
        else None
    )
    if _is(ordered, DType.ARRAY):
        what = {exp.Ordered: "ORDER BY", exp.Max: "max", exp.Min: "min", exp.ArgMax: "max_by", exp.ArgMin: "min_by"}[
            type(node)
        ]
        raise unsupported(
            f"{what} over an array value ({ordered.sql(dialect=READ_DIALECT)})",
            "Trino raises where two arrays it compares have a NULL element before their first difference, and which "
            "pairs its sort compares depends on its algorithm; DuckDB orders them all. Order by a scalar instead",
        )
    if isinstance(node, exp.ArrayMax | exp.ArrayMin):
        if _nested_order(node.this, "array_max" if isinstance(node, exp.ArrayMax) else "array_min"):
            return _macro(
                "dw_array_max_nested" if isinstance(node, exp.ArrayMax) else "dw_array_min_nested", node, node.this
            )
        floats = _element(node.this.type) is not None and _element(node.this.type).is_type(*FLOATS)
        if isinstance(node, exp.ArrayMax) and floats:
            return _fn("dw_array_max_float", node.this)
        return _fn("dw_array_max" if isinstance(node, exp.ArrayMax) else "dw_array_min", node.this)
    if isinstance(node, exp.ArraySort) and isinstance(node.args.get("expression"), exp.Lambda):
        return _sort_by(node)
    if (
        isinstance(node, exp.ArraySort)
        and node.args.get("expression") is None
        and _nested_order(node.this, "array_sort")
    ):
        return _macro("dw_array_sort", node, node.this)
    if isinstance(node, exp.ArrayContains) and _is(node.this, DType.ARRAY):
        _refuse_nested_equality(node.this, "contains")
        return _fn("dw_contains_float" if _float_elements(node.this) else "dw_contains", node.this, node.expression)
    if isinstance(node, exp.Reduce):
        return _reduce(node)
    if isinstance(node, exp.Lag | exp.Lead | exp.NthValue) and _int_literal(node.args.get("offset")):
        # lag/lead take an offset of 0 or more, nth_value of 1 or more (Trino raises; DuckDB reads lag(x, -1) as
        # lead(x, 1) and gives nth_value(x, 0) as NULL)
        offset = int(node.args["offset"].sql(dialect=WRITE_DIALECT).replace(" ", "").strip("()"))
        least = 1 if isinstance(node, exp.NthValue) else 0
        if offset < least:
            raise QueryError(
                f"Offset must be at least {least} (Athena raises it too; {node.sql_name()} offset {offset})"
            )
    if isinstance(node, exp.Upper):
        return _fn("dw_upper", node.this)
    if isinstance(node, exp.FromBase):
        return _macro("dw_from_base", node, node.this, node.expression)
    if isinstance(node, exp.Normalize):  # Trino's normalize(s) is NFC, which DuckDB's nfc_normalize writes
        form = node.args.get("form")
        if isinstance(form, exp.Expression) and form.name.upper() != "NFC":
            raise unsupported(f"normalize to {form.name.upper()}", "DuckDB normalizes to NFC only")
        return _fn("NFC_NORMALIZE", node.this)
    if isinstance(node, exp.FromISO8601Date):
        result = _macro("dw_iso8601_date", node, node.this)
        result.type = exp.DataType.build("DATE")
        return result
    if isinstance(node, exp.ApproxQuantile):
        raise unsupported("approx_percentile", "Trino's quantile digest and DuckDB's t-digest give different values")
    if isinstance(node, exp.Fetch):
        options = node.args.get("limit_options")
        if options is not None and options.args.get("with_ties"):
            raise unsupported("FETCH FIRST ... WITH TIES", "DuckDB has no WITH TIES")
        if options is not None and options.args.get("percent"):
            raise unsupported("FETCH FIRST ... PERCENT", "DuckDB has no FETCH PERCENT")
    if isinstance(node, exp.Mod):
        _refuse_unknown(node, (node.this, node.expression), "%", "x % 0 raises for integers and decimals, not doubles")
    if isinstance(node, exp.Mod) and not any(  # a literal such as 2.5 is a decimal (sqlglot: double)
        _is(side, DType.DOUBLE, DType.FLOAT) and not _is_decimal(side) for side in (node.this, node.expression)
    ):
        result = _macro("dw_mod", node, node.this, node.expression)
        left, right = _decimal_type(node.this), _decimal_type(node.expression)
        if (_is_decimal(node.this) or _is_decimal(node.expression)) and left and right:
            # decimal % decimal: Trino's type is decimal(min(p2 - s2, p1 - s1) + max(s), max(s)).
            (p1, s1), (p2, s2) = left, right
            scale = max(s1, s2)
            return _as(result, f"DECIMAL({min(38, min(p2 - s2, p1 - s1) + scale)}, {scale})")
        return result
    if isinstance(node, exp.StrPosition) and node.args.get("occurrence") is not None:
        return _macro("dw_strpos", node, node.this, node.args["substr"], node.args["occurrence"])
    if isinstance(node, exp.StrPosition) and node.args.get("position") is not None:
        raise unsupported("strpos with a start position", "Trino has none; this SQL is not Trino's")
    if isinstance(node, exp.Split) and node.args.get("limit") is not None:
        return _macro("dw_split", node, node.this, node.expression, node.args["limit"])
    if isinstance(node, exp.Split):
        return _macro("dw_split2", node, node.this, node.expression)
    if isinstance(node, exp.Pad) and node.args.get("fill_pattern") is not None:
        to_left = exp.Boolean(this=bool(node.args.get("is_left")))
        return _macro("dw_pad", node, node.this, node.expression, node.args["fill_pattern"], to_left)
    if isinstance(node, exp.Levenshtein) and not any(
        node.args.get(k) for k in node.args if k not in ("this", "expression")
    ):
        return _macro("dw_levenshtein", node, node.this, node.expression)
    if isinstance(node, exp.Substring):
        start, length = node.args.get("start"), node.args.get("length")
        if start is None:
            return None
        if length is None:
            return _fn("dw_substr", node.this, start)
        return _fn("dw_substr3", node.this, start, length)
    if isinstance(node, exp.ArraySlice):
        start, length = node.args.get("start"), node.args.get("end")
        return _macro("dw_slice", node, node.this, start, length)
    if isinstance(node, exp.GenerateSeries):
        return _sequence(node)
    if isinstance(node, exp.Repeat):
        return _macro("dw_repeat", node, node.this, node.args["times"])
    if isinstance(node, exp.ArrayDistinct):
        return _fn("dw_array_distinct", node.this)
    if isinstance(node, exp.ArrayPosition):
        if any(node.args.get(k) is not None for k in node.args if k not in ("this", "expression")):
            raise unsupported("array_position with an instance argument", "DuckDB finds the first match only")
        element = _element(node.this.type)
        if element is not None and element.is_type(DType.ARRAY) and _element(element) is not None:
            if _element(element).is_type(*STRUCTURED, *FLOATS):
                raise unsupported(
                    f"array_position over array({element.sql(dialect=READ_DIALECT).lower()})",
                    "Trino compares nested values with its own NULL and NaN rules",
                )
            return _macro("dw_array_position_nested", node, node.this, node.expression)
        _refuse_nested_equality(node.this, "array_position")
        return _fn(
            "dw_array_position_float" if _float_elements(node.this) else "dw_array_position", node.this, node.expression
        )
    if isinstance(node, exp.ArrayRemove):
        _refuse_nested_equality(node.this, "array_remove")
        return _fn(
            "dw_array_remove_float" if _float_elements(node.this) else "dw_array_remove", node.this, node.expression
        )
    if isinstance(node, exp.ArrayExcept):
        return _fn("dw_array_except", node.this, node.expression)
    if isinstance(node, exp.ArrayIntersect):
        if len(node.expressions) != 2:
            raise unsupported(f"array_intersect of {len(node.expressions)} arrays", "locally it takes two")
        return _fn("dw_array_intersect", *node.expressions)
    if isinstance(node, exp.Reverse) and not _text_type(node.this):
        # reverse(array) reverses the elements; DuckDB's reverse writes the list as text and reverses that.
        if _is(node.this, DType.ARRAY):
            return _fn("LIST_REVERSE", node.this)
        if not _is(node.this, DType.VARBINARY, DType.BINARY, DType.NULL) and not isinstance(node.this, exp.Null):
            raise unsupported(
                f"reverse({node.this.sql(dialect=READ_DIALECT)}), whose type dw cannot tell",
                "it reverses a string's characters and an array's elements; CAST it to varchar or its array type",
            )
    if isinstance(node, exp.Replace):
        return _fn("dw_replace", node.this, node.expression, node.args.get("replacement") or exp.Literal.string(""))
    if isinstance(node, exp.ConcatWs) and len(node.expressions) == 2:
        # concat_ws(sep, array) joins the elements, skipping NULLs; DuckDB writes the list as text.
        value = node.expressions[1]
        if _is(value, DType.ARRAY):
            return _fn("ARRAY_TO_STRING", value, node.expressions[0])
        if not _text_type(value) and not _is(value, DType.NULL):
            raise unsupported("concat_ws over a value of unknown type", "dw cannot tell an array from a string here")
    if (
        isinstance(node, exp.ConcatWs)
        and len(node.expressions) > 2
        and any(_is(v, DType.ARRAY) for v in node.expressions)
    ):
        raise QueryError(
            'Athena rejects concat_ws of strings and arrays together ("Unexpected parameters"): it takes strings, or '
            "one array of strings (DuckDB would write the array as text)"
        )
    if isinstance(node, exp.JSONExtractScalar | exp.JSONExtract) and not node.args.get("json_query"):
        path = _json_path(node.expression, node.this)
        if isinstance(node, exp.JSONExtractScalar):
            return _macro("dw_json_scalar", node, node.this, path)
        return _json_text(_fn("JSON_EXTRACT", node.this, path), sort=False)  # as read: copyCurrentStructure
    if isinstance(node, exp.JSONExtract | exp.JSONValue) or (
        isinstance(node, exp.Anonymous) and node.name.lower() == "json_exists"
    ):
        name = (
            "json_exists"
            if isinstance(node, exp.Anonymous)
            else ("json_value" if isinstance(node, exp.JSONValue) else "json_query")
        )
        raise unsupported(name, "DuckDB has no SQL/JSON path language (lax, strict, filters)")
    if isinstance(node, COMPARISONS) and any(_is(side, DType.JSON) for side in (node.this, node.expression)):
        raise unsupported("comparing JSON values", "Trino compares them canonically (key order aside), DuckDB as text")
    if isinstance(node, exp.Format):
        return _format(node)
    if isinstance(node, exp.RegexpReplace):
        return _regexp_replace(node)
    if isinstance(node, exp.RegexpCount):
        return _regexp_count(node)
    if isinstance(node, exp.RegexpExtractAll):
        _refuse_empty_matches(node.expression, "regexp_extract_all")
        _regexp_group(node)
    if isinstance(node, exp.RegexpSplit):  # Trino splits `abcd` by '' into ['', a, b, c, d, '']; DuckDB [a, b, c, d]
        _refuse_empty_matches(node.expression, "regexp_split", empty_pattern_differs=True)
    if isinstance(node, exp.Anonymous) and node.name.lower() == "regexp_position" and len(node.expressions) >= 2:
        _refuse_empty_matches(node.expressions[1], "regexp_position", empty_pattern_differs=True)
    if isinstance(node, exp.StrToTime):
        return _date_parse(node)
    if isinstance(node, exp.Bracket):
        return _bracket(node)
    if isinstance(node, exp.Unnest) and isinstance(node.parent, exp.From | exp.Join):
        return _unnest(node)
    if isinstance(node, exp.FromISO8601Timestamp):
        return _iso8601_timestamp(node)
    if isinstance(node, exp.AtTimeZone):
        return _at_time_zone(node)
    if isinstance(node, exp.UnixToTime):
        return _unix_to_time(node)
    if isinstance(node, exp.StrToMap):
        result = _macro("split_to_map", node, node.this, node.args.get("pair_delim"), node.args.get("key_value_delim"))
        result.type = exp.DataType.build("MAP(VARCHAR, VARCHAR)")
        return result
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        if name in ("map_filter", "transform_values", "transform_keys"):
            return _map_lambda(node)
        if name in ("zip", "zip_with"):
            return _zip(node)
        if name == "json_array_length" and len(node.expressions) == 1:
            result = _macro("dw_json_array_length", node, node.expressions[0])
            result.type = exp.DataType.build("BIGINT")
            return result
        if name in MACRO_ARITY and _in_try(node):  # a macro that raises: its NULL-returning twin inside TRY
            return _macro(name, node, *node.expressions)
        if name == "url_extract_parameter" and len(node.expressions) == 2:
            result = _fn("dw_url_extract_parameter", *node.expressions)
            result.type = exp.DataType.build("VARCHAR")
            return result
        if name in ("url_encode", "url_decode") and len(node.expressions) == 1:
            result = _fn(f"dw_{name}", node.expressions[0])
            result.type = exp.DataType.build("VARCHAR")
            return result
        if name == "to_base" and len(node.expressions) == 2:
            return _macro("dw_to_base", node, *node.expressions)
        if name == "every":  # Trino's other name of bool_and
            return exp.LogicalAnd(this=node.expressions[0])
        if name == "to_iso8601":
            return _to_iso8601(node)
        if name == "map_agg":
            key, value = node.expressions
            struct = exp.Struct(expressions=[exp.PropertyEQ(this=exp.to_identifier("key"), expression=key),
                                             exp.PropertyEQ(this=exp.to_identifier("value"), expression=value)])  # fmt: skip
            entries = exp.Filter(
                this=_fn("LIST", struct),
                expression=exp.Where(this=exp.Not(this=exp.Is(this=key.copy(), expression=exp.Null()))),
            )
            result = _fn("MAP_FROM_ENTRIES", entries)
            result.type = exp.DataType(
                this=DType.MAP,
                expressions=[key.type or exp.DataType.build("UNKNOWN"), value.type or exp.DataType.build("UNKNOWN")],
                nested=True,
            )
            return result
        if name == "with_timezone":
            value, zone = node.expressions
            if not (isinstance(zone, exp.Literal) and zone.is_string):
                raise unsupported("with_timezone with a zone that is not a string literal", "the zone must be known")
            return _zoned(
                _fn("TIMEZONE", exp.Literal.string(_duck_zone(_zone_name(zone.name))), value), _zone_name(zone.name)
            )
        if name == "at_timezone":
            return _at_time_zone(exp.AtTimeZone(this=node.expressions[0], zone=node.expressions[1]))
    return None


def _varchar_length(node: exp.Cast, fixed: exp.Expression) -> exp.Expression:
    """CAST(... AS varchar(n)): text is cut to n characters in Trino, anything else longer than n raises
    (DuckDB ignores the length)."""
    to = node.to
    if not (to.is_type(DType.VARCHAR) and to.expressions):
        return fixed
    length = to.expressions[0].this if isinstance(to.expressions[0], exp.DataTypeParam) else to.expressions[0]
    if not (isinstance(length, exp.Literal) and length.name.isdigit()):
        return fixed
    if _text_type(node.this) or isinstance(node.this, exp.Null):
        cut = _fn("LEFT", fixed, exp.Literal.number(int(length.name)))
        cut.type = node.type
        return cut
    fits = exp.or_(
        exp.Is(this=fixed.copy(), expression=exp.Null()),
        exp.LTE(this=_fn("LENGTH", fixed.copy()), expression=exp.Literal.number(int(length.name))),
    )
    message = exp.DPipe(
        this=exp.DPipe(this=exp.Literal.string("Value "), expression=fixed.copy()),
        expression=exp.Literal.string(f" cannot be represented as varchar({length.name})"),
    )
    if isinstance(node, exp.TryCast):
        result = exp.Case(ifs=[exp.If(this=fits, true=fixed)])
    else:
        result = _raise_unless(node, fits, fixed, message)
    result.type = node.type
    return result


def _fix_cast(node: exp.Cast) -> exp.Expression:
    value, to = node.this, node.to
    safe = isinstance(node, exp.TryCast) or _in_try(node)
    literal = isinstance(value, exp.Literal) and value.is_string
    if to.is_type(DType.TIMESTAMPTZ):
        if literal:
            return _timestamp_literal(node)
        if _is(value, DType.TIMESTAMPTZ):
            return value  # keeps its zone
        return _zoned(node, "UTC")  # a plain timestamp is read in the session zone
    if to.is_type(DType.TIMESTAMP) and (_precision(node) or 0) > 6:
        raise unsupported(f"the type timestamp({_precision(node)})", "DuckDB keeps timestamps to the microsecond")
    if to.is_type(DType.TIMESTAMP) and not to.expressions and _text_type(value) and not node.meta.get("literal"):
        # CAST(varchar AS timestamp) is a timestamp(3) in Trino, rounded half up to the millisecond.
        micros = _fn("EPOCH_US", node)
        millis = _fn(
            "FLOOR",
            exp.Div(
                this=exp.paren(exp.Add(this=micros, expression=exp.Literal.number(500))),
                expression=exp.Literal.number(1000),
            ),
        )
        rounded = _fn("MAKE_TIMESTAMP", exp.Mul(this=_as(millis, "BIGINT"), expression=exp.Literal.number(1000)))
        rounded.type = exp.DataType.build("TIMESTAMP")
        return rounded
    if to.is_type(DType.DECIMAL) and _is(value, DType.DOUBLE) and not _is_decimal(value):
        # Trino casts a double to a decimal from its shortest decimal text (BigDecimal.valueOf), rounded half up:
        # 1.005E0 is 1.01 as a decimal(4, 2), 1E0 is 1.0 exactly as a decimal(38, 37). DuckDB casts the binary value
        # (1.00; 0.99999999999999995...). DuckDB's text of a double is the same shortest decimal.
        node.set("this", _as(value, "VARCHAR"))
    if to.is_type(DType.DECIMAL) and not to.expressions:
        # DECIMAL '1.50' is a decimal(3, 2); CAST(x AS DECIMAL) a decimal(38, 0). DuckDB's DECIMAL is (18, 3).
        typed = node.meta.get("decimal_literal")
        node.set("to", exp.DataType.build(f"DECIMAL({typed[0]}, {typed[1]})" if typed else "DECIMAL(38, 0)"))
        node.type = node.to.copy()
        return node
    if to.is_type(DType.JSON):
        # CAST('abc' AS JSON) is the JSON string "abc" in Trino; DuckDB parses the text as JSON. A map's keys are
        # written in order (MapToJsonCast), a double as Java writes it (1.0E20), a decimal as BigDecimal does (1.50).
        decimal = _decimal_type(value) if _is(value, DType.DECIMAL) else None
        if decimal is not None and decimal[1] <= 6:  # BigDecimal writes 1E-7 from scale 7 on
            text = exp.Cast(this=value, to=exp.DataType.build("VARCHAR"))
            text.type = exp.DataType.build("VARCHAR")
            return _as(_fix_cast(text), "JSON")
        if _json_castable(value.type) and not _unknown(value):
            return _json_text(_fn("TO_JSON", value), sort=True)
        raise unsupported(
            f"CAST of {value.type.sql(dialect=READ_DIALECT).lower() if value.type else 'this value'} AS JSON",
            "Trino writes rows, reals, decimals in arrays or maps, dates and timestamps its own way",
        )
    if to.is_type(*exp.DataType.TEXT_TYPES) and _is(value, DType.JSON):
        # CAST(JSON '"a"' AS varchar) is a, not "a"; JSON 'null' is NULL; 128.9 is 1.289E2; an object raises.
        return _fn("dw_json_varchar_try" if safe else "dw_json_varchar", value)
    if to.is_type(*exp.DataType.TEXT_TYPES) and _is(value, DType.ARRAY, DType.MAP, DType.STRUCT):
        kind = value.type.sql(dialect=READ_DIALECT).lower()
        raise QueryError(
            f'Athena rejects CAST of {kind} AS varchar ("Cannot cast"); use array_join or json_format(CAST(... AS JSON))'
        )
    if to.is_type(DType.DOUBLE, DType.FLOAT) and _text_type(value):
        # Java's Double.parseDouble reads Infinity and NaN only; DuckDB also inf, infinity, nan in any case.
        loose = exp.RegexpFullMatch(
            this=value.copy(), expression=exp.Literal.string(r"\s*[+-]?(?i:inf|infinity|nan)\s*")
        )
        java = exp.RegexpFullMatch(this=value.copy(), expression=exp.Literal.string(r"\s*[+-]?(Infinity|NaN)\s*"))
        ok = exp.or_(exp.Is(this=value.copy(), expression=exp.Null()), exp.Not(this=loose), java)
        if safe:
            return exp.Case(ifs=[exp.If(this=ok, true=node)])
        message = exp.DPipe(
            this=exp.DPipe(this=exp.Literal.string("Cannot cast '"), expression=value.copy()),
            expression=exp.Literal.string(f"' to {to.this.value}"),
        )
        return exp.Case(ifs=[exp.If(this=ok, true=node)], default=_fn("ERROR", message))
    if to.is_type(DType.BOOLEAN) and _text_type(value):
        # Trino reads true/t/1 and false/f/0 only; DuckDB also yes, no, on, off.
        return _fn("dw_to_boolean_try" if safe else "dw_to_boolean", value)
    if to.is_type(*exp.DataType.TEXT_TYPES) and _is(value, DType.DECIMAL) and _decimal_type(value):
        # DuckDB writes a decimal(2, 2) zero as '.00'; Trino as '0.00'. One more digit of precision fixes it.
        precision, scale = _decimal_type(value)
        if precision == scale and precision < 38:
            node.set("this", _as(value, f"DECIMAL({precision + 1}, {scale})"))
        return node
    if to.is_type(*exp.DataType.TEXT_TYPES) and _is(value, DType.DOUBLE, DType.FLOAT):
        # Trino writes doubles in scientific notation: CAST(37.7E0 AS varchar) is '3.77E1'.
        return _fn("dw_double_varchar", value)
    if to.is_type(*INTEGER_TYPES, *exp.DataType.TEXT_TYPES) and _unknown(value):
        _refuse_unknown(
            node,
            (value,),
            f"CAST(... AS {to.sql(dialect=READ_DIALECT).lower()})",
            "a double is rounded half up and written 1.5E0, text is parsed, a timestamp is written to the millisecond",
        )
    if to.is_type(*INTEGER_TYPES):
        if _text_type(value):
            # Trino parses with Integer.parseInt/Long.parseLong: '12.5', '1e3', ' 7' and '0x10'
            # are no integers (try_cast: NULL, cast: error). DuckDB rounds or accepts them.
            is_integer = exp.RegexpFullMatch(this=value.copy(), expression=exp.Literal.string("[+-]?[0-9]+"))
            if safe:
                return exp.Case(ifs=[exp.If(this=is_integer, true=node)])
            type_name = to.this.value  # Trino's message: Cannot cast 'abc' to INT
            message = exp.DPipe(
                this=exp.DPipe(this=exp.Literal.string("Cannot cast '"), expression=value.copy()),
                expression=exp.Literal.string(f"' to {type_name}"),
            )
            ok = exp.or_(exp.Is(this=value.copy(), expression=exp.Null()), is_integer)
            return exp.Case(ifs=[exp.If(this=ok, true=node)], default=_fn("ERROR", message))
        if _is(value, DType.DOUBLE, DType.FLOAT):
            # Trino rounds half away from zero (2.5 -> 3, -2.5 -> -3); DuckDB half to even.
            node.set("this", exp.Round(this=value))
            return node
    if to.is_type(*exp.DataType.TEXT_TYPES) and _is(value, DType.TIMESTAMP, DType.TIMESTAMPTZ):
        # Athena's timestamps (Parquet included) are timestamp(3): '2024-01-31 23:30:00.000',
        # with the zone after a zoned one ('... UTC'; DuckDB keeps zoned values in UTC).
        precision = value.type.expressions[0].this.to_py() if value.type.expressions else 3
        fraction = {0: "", 3: ".%g", 6: ".%f"}.get(precision)
        zone = " UTC" if value.type.is_type(DType.TIMESTAMPTZ) else ""
        if fraction is not None:
            return _fn("STRFTIME", value, exp.Literal.string(f"%Y-%m-%d %H:%M:%S{fraction}{zone}"))
    return node


def _json_castable(dtype: exp.DataType | None) -> bool:
    """A type whose CAST(... AS JSON) is DuckDB's TO_JSON rewritten by `json_text`: text, integers, booleans and
    doubles, in arrays and in maps with text keys."""
    if dtype is None:
        return False
    if dtype.is_type(DType.ARRAY):
        return _element(dtype) is not None and _json_castable(_element(dtype))
    if dtype.is_type(DType.MAP):
        key, value = _key_value(dtype)
        return key is not None and key.is_type(*exp.DataType.TEXT_TYPES) and _json_castable(value)
    return dtype.is_type(
        *exp.DataType.TEXT_TYPES, *INTEGER_TYPES, DType.BOOLEAN, DType.DOUBLE, DType.UNKNOWN, DType.NULL
    )


def _json_text(value: exp.Expression, sort: bool) -> exp.Expression:
    """A DuckDB JSON value as Trino's Jackson writes it (`json_text`)."""
    text = _fn("dw_json_text", _as(value, "VARCHAR"), exp.Boolean(this=sort))
    result = _as(text, "JSON")
    result.type = exp.DataType.build("JSON")
    return result


# ---- DECIMAL arithmetic: Trino keeps decimals decimal, DuckDB divides and averages in DOUBLE


def _decimal_type(node: exp.Expression) -> tuple[int, int] | None:
    """(precision, scale) of a DECIMAL (or integer) operand, as Trino types it."""
    if isinstance(node, exp.Paren):
        return _decimal_type(node.this)
    if isinstance(node, exp.Neg):
        return _decimal_type(node.this)
    if isinstance(node, exp.Literal) and not node.is_string:
        text = node.name.lower()
        if "e" in text:
            return None  # a DOUBLE literal
        whole, _, fraction = text.partition(".")
        digits = len(whole.lstrip("0")) + len(fraction)
        if fraction:
            return max(digits, 1), len(fraction)
        return (10, 0) if abs(int(whole)) < 2**31 else (19, 0)
    dtype = node.type
    if dtype is None:
        return None
    if dtype.is_type(*INTEGER_TYPES):
        return INTEGER_PRECISION[dtype.this], 0
    if dtype.is_type(DType.DECIMAL):
        params = [p.this.to_py() for p in dtype.expressions]
        if not params:
            return None
        scale = params[1] if len(params) > 1 else 0
        # sqlglot types sum(decimal(p, s)) as decimal(p, s); Trino as decimal(38, s).
        exact = isinstance(node, exp.Column | exp.Cast | exp.TryCast | exp.Identifier)  # an Identifier: a lambda's
        return (params[0] if exact else 38), scale
    return None


def _is_decimal(node: exp.Expression) -> bool:
    """A DECIMAL operand; sqlglot types a literal such as 7.25 as DOUBLE, Trino as DECIMAL."""
    if isinstance(node, exp.Paren | exp.Neg):
        return _is_decimal(node.this)
    if isinstance(node, exp.Literal):
        return not node.is_string and "." in node.name and "e" not in node.name.lower()
    return _is(node, DType.DECIMAL)


def _unscaled(node: exp.Expression, scale: int) -> exp.Expression:
    """The operand times 10^scale, as an exact HUGEINT."""
    value = exp.Mul(this=exp.paren(node, copy=False), expression=exp.Literal.number(10**scale)) if scale else node
    return _as(value, "HUGEINT")


def _scaled_decimal(unscaled: exp.Expression, precision: int, scale: int) -> exp.Expression:
    """HUGEINT n -> DECIMAL(precision, scale) n / 10^scale, exactly."""
    if not scale:
        return _as(unscaled, f"DECIMAL({precision}, 0)")
    value = _as(unscaled, "DECIMAL(38, 0)")
    if scale:
        step = _as(exp.Literal.string(f"1e-{scale}"), f"DECIMAL({scale + 1}, {scale})")
        value = exp.Mul(this=value, expression=step)
    return _as(value, f"DECIMAL({precision}, {scale})")


def _decimal_div(node: exp.Div) -> exp.Expression | None:
    """decimal / decimal is a DECIMAL in Trino, rounded half up; DuckDB divides in DOUBLE.

    Trino's result: scale max(sa, sb), precision min(38, pa + sb + max(0, sb - sa)).
    Computed on unscaled HUGEINTs: round(a * 10^(sb + s - sa) / b) is the result's unscaled value.
    """
    if not (_is_decimal(node.this) or _is_decimal(node.expression)):
        return None
    left, right = _decimal_type(node.this), _decimal_type(node.expression)
    if left is None or right is None:
        if _is(node.this, DType.DOUBLE, DType.FLOAT) or _is(node.expression, DType.DOUBLE, DType.FLOAT):
            return None  # a double operand makes it a double division in both
        raise unsupported(
            "a decimal division where dw cannot tell the operands' scale", "Trino's result type depends on it"
        )
    (pa, sa), (_, sb) = left, right
    scale = max(sa, sb)
    precision = min(38, pa + sb + max(0, sb - sa))
    numerator = _unscaled(node.this, sa)
    if sb + scale - sa:
        numerator = exp.Mul(this=numerator, expression=exp.Literal.number(10 ** (sb + scale - sa)))
    quotient = _macro("dw_div_half_up", node, numerator, _unscaled(node.expression, sb))
    return _scaled_decimal(quotient, precision, scale)


def _decimal_avg(node: exp.Avg, window: exp.Window | None = None) -> exp.Expression | None:
    """avg(decimal(p, s)) is a decimal(p, s) in Trino, rounded half up; DuckDB's is a DOUBLE."""
    value = node.this
    if isinstance(value, exp.Distinct) and any(_is(v, DType.DECIMAL) for v in value.expressions):
        raise unsupported("avg(DISTINCT decimal)", "DuckDB averages decimals as doubles")
    if not _is(value, DType.DECIMAL):
        return None
    if isinstance(node.parent, exp.Filter):
        raise unsupported("avg(decimal) FILTER (WHERE ...)", "DuckDB averages decimals as doubles")
    if window is None and isinstance(node.parent, exp.Window):
        return None  # handled with its window
    if _decimal_type(value) is None:
        raise unsupported("avg of a decimal whose scale dw cannot tell", "Trino's result type depends on it")
    precision, scale = _decimal_type(value)
    total: exp.Expression = exp.Sum(this=_unscaled(value.copy(), scale))
    count: exp.Expression = exp.Count(this=value.copy())
    if window is not None:
        total, count = _over(window, total), _over(window, count)
    return _scaled_decimal(_macro("dw_div_half_up", node, total, count), precision, scale)


def _aggregate_type(node: exp.Expression) -> exp.Expression | None:
    """sum of integers is a bigint in Trino, raising past its range (DuckDB: a HUGEINT that goes on); sum and avg
    of reals are reals (DuckDB: doubles). Applied to the aggregate with its FILTER and OVER, if any."""
    core = node
    while isinstance(core, exp.Filter | exp.Window):
        core = core.this
    parent = node.parent
    if not isinstance(core, exp.Sum | exp.Avg) or (isinstance(parent, exp.Filter | exp.Window) and parent.this is node):
        return None  # not an aggregate, or one fixed with its FILTER or OVER
    value = core.this
    if isinstance(value, exp.Distinct):
        value = value.expressions[0] if value.expressions else None
    if isinstance(core, exp.Sum) and _is(value, *INTEGER_TYPES):
        result = _macro("dw_bigint_sum", node, node)
        result.type = exp.DataType.build("BIGINT")
        return result
    if _is(value, DType.FLOAT):
        return _as(node, "FLOAT")
    return None


def _over(window: exp.Window, aggregate: exp.Expression) -> exp.Window:
    copy = window.copy()
    copy.set("this", aggregate)
    return copy


# ---- format_datetime: Joda-Time patterns to DuckDB strftime


def _joda_field(letter: str, count: int) -> str | None:
    if letter in "yYx":  # Joda pads a year to the count from 5 letters on (yyyyy: 02001)
        return None if count > 4 else "%y" if count == 2 else ("%G" if letter == "x" else "%Y")
    if letter == "M":
        return {1: "%-m", 2: "%m", 3: "%b"}.get(count, "%B")
    if letter == "E":
        return "%a" if count <= 3 else "%A"
    if letter == "S":
        return {3: "%g", 6: "%f", 9: "%n"}.get(count)
    if letter == "D":
        return {1: "%-j", 3: "%j"}.get(count)
    if letter == "a":
        return "%p"
    if letter == "e" and count == 1:
        return "%u"
    if letter == "w" and count <= 2:
        return "%-V" if count == 1 else "%V"
    numeric = {"d": "d", "H": "H", "h": "I", "m": "M", "s": "S"}.get(letter)
    if numeric and count <= 2:
        return f"%-{numeric}" if count == 1 else f"%{numeric}"
    return None


def joda_to_strftime(pattern: str) -> str:
    """A Joda-Time pattern (Trino's format_datetime) as a DuckDB strftime format."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "'":
            end = pattern.find("'", i + 1)
            if end == -1:
                raise QueryError(f"format_datetime pattern {pattern!r} has an unclosed quote")
            out.append("'" if end == i + 1 else pattern[i + 1 : end].replace("%", "%%"))
            i = end + 1
        elif char.isascii() and char.isalpha():
            count = len(pattern[i:]) - len(pattern[i:].lstrip(char))
            field = _joda_field(char, count)
            if field is None:
                raise QueryError(f"format_datetime: pattern field {char * count!r} is not supported locally")
            out.append(field)
            i += count
        else:
            out.append("%%" if char == "%" else char)
            i += 1
    return "".join(out)


def _format_datetime(node: exp.Anonymous) -> exp.Expression:
    args = node.expressions
    if len(args) != 2 or not (isinstance(args[1], exp.Literal) and args[1].is_string):
        raise QueryError("format_datetime runs locally with a literal pattern only, such as 'yyyy-MM-dd'")
    return _fn("STRFTIME", args[0], exp.Literal.string(joda_to_strftime(args[1].name)))


# ---------------------------------------------------------------- tables, SHOW, DESCRIBE


def _unknown_table(name: str, catalog: list[TableInfo], hint: str = "") -> QueryError:
    tables = ", ".join(t.name for t in catalog) or "(none)"
    return QueryError(f"table {name} does not exist in the local lake{hint}; tables: {tables} ({RUN_HINT})")


def _resolve_tables(statement: exp.Expression, catalog: list[TableInfo]) -> None:
    """Every table read must be in the local catalog; an unqualified name that only one
    database has gets that database (as Athena with that database selected)."""
    names = {(t.database, t.table) for t in catalog}
    ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
    for table in statement.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            raise QueryError(f"{table.this.sql(dialect=READ_DIALECT)} is not a table of the local lake")
        name, db, catalog_name = table.name.lower(), table.db.lower(), table.catalog.lower()
        written = ".".join(p for p in (catalog_name, db, name) if p)
        if catalog_name and catalog_name != AWS_CATALOG:
            raise _unknown_table(written, catalog)
        if not db:
            if name in ctes:
                continue
            candidates = sorted(t.database for t in catalog if t.table == name)
            if len(candidates) == 1:
                table.set("db", exp.to_identifier(candidates[0]))
                continue
            hint = f" (write it as {' or '.join(f'{d}.{name}' for d in candidates)})" if candidates else ""
            raise _unknown_table(written, catalog, hint)
        if db != "information_schema" and (db, name) not in names:
            raise _unknown_table(written, catalog)


_NAME = r"((?:[\w$]+|\"[^\"]+\"|`[^`]+`)(?:\.(?:[\w$]+|\"[^\"]+\"|`[^`]+`))*)"
_PATTERN = r"(?:\s+(LIKE\s+)?'((?:[^']|'')*)')?"
SHOW_TABLES = re.compile(rf"SHOW\s+TABLES(?:\s+(?:FROM|IN)\s+{_NAME})?{_PATTERN}", re.I)
SHOW_DATABASES = re.compile(rf"SHOW\s+(?:SCHEMAS|DATABASES){_PATTERN}", re.I)
DESCRIBE = re.compile(rf"(?:DESCRIBE|DESC|SHOW\s+COLUMNS\s+(?:FROM|IN))\s+{_NAME}", re.I)


def _parts(name: str) -> list[str]:
    return [p.strip('"`').lower() for p in re.findall(r"\"[^\"]+\"|`[^`]+`|[^.]+", name)]


def _matcher(like: str | None, pattern: str | None):
    if pattern is None:
        return lambda _: True
    pattern = pattern.replace("''", "'")
    if like:  # Trino: SHOW TABLES LIKE 'fda%'
        regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    else:  # Athena: SHOW TABLES 'fda*|bar'
        regex = "|".join("".join(".*" if c == "*" else re.escape(c) for c in alt) for alt in pattern.split("|"))
    compiled = re.compile(regex, re.I)
    return lambda name: compiled.fullmatch(name) is not None


def _meta(sql: str, lake_root: Path, naming: Naming, catalog: list[TableInfo]) -> QueryResult | None:
    """SHOW TABLES / SHOW SCHEMAS / DESCRIBE, answered from the local catalog; None otherwise."""
    text = sql.strip().rstrip(";").strip()
    databases = [naming.database(layer) for layer in LAYERS]
    if match := SHOW_TABLES.fullmatch(text):
        name, like, pattern = match.groups()
        keep = _matcher(like, pattern)
        if name is None:
            rows = [(t.name,) for t in catalog if keep(t.table)]
        else:
            db = _parts(name)[-1]
            if db not in databases:
                raise QueryError(f"database {db} does not exist; databases: {', '.join(databases)}")
            rows = [(t.table,) for t in catalog if t.database == db and keep(t.table)]
        return QueryResult(["tab_name"], ["varchar"], rows)
    if match := SHOW_DATABASES.fullmatch(text):
        keep = _matcher(*match.groups())
        return QueryResult(["database_name"], ["varchar"], [(d,) for d in databases if keep(d)])
    if match := DESCRIBE.fullmatch(text):
        parts = _parts(match.group(1))
        if parts[0] == AWS_CATALOG:
            parts = parts[1:]
        found = [t for t in catalog if [t.database, t.table] == parts or (len(parts) == 1 and t.table == parts[0])]
        if len(found) != 1:
            raise _unknown_table(".".join(parts), catalog)
        con, unreadable = _open(found, naming)
        try:
            if unreadable:
                raise QueryError(unreadable[found[0].name])
            rows = [(c, t, "") for c, t in _columns(con, found[0])]
        finally:
            con.close()
        return QueryResult(["col_name", "data_type", "comment"], ["varchar"] * 3, rows)
    if re.match(r"(SHOW|DESCRIBE|DESC)\b", text, re.I):
        raise QueryError("locally, SHOW TABLES [IN db], SHOW DATABASES and DESCRIBE db.table are supported")
    return None


# ---------------------------------------------------------------- running


def _column_problem(statement: exp.Expression, catalog: list[TableInfo], con) -> str | None:
    """sqlglot's account of a column that does not resolve (DuckDB's refers to the translated
    SQL), with the columns of the tables the query reads."""
    schema = _schema(con, catalog)
    try:
        qualify(statement.copy(), dialect=READ_DIALECT, schema=schema, expand_alias_refs=False)
    except Exception as e:
        if not str(e).startswith("Column"):
            return None
        read = {(t.db.lower(), t.name.lower()) for t in statement.find_all(exp.Table)}
        tables = [
            f"{t.name}: {', '.join(c for c, _ in _columns(con, t))}" for t in catalog if (t.database, t.table) in read
        ]
        return f"{e}" + (f"; columns of {'; '.join(tables)}" if tables else "")
    return None


def _sandbox(con: duckdb.DuckDBPyConnection, lake_root: Path, catalog: list[TableInfo]) -> None:
    """The query may read the lake and nothing else (no read_csv('/etc/...'), no COPY), nor
    change a setting."""
    folders = [lake_root, *(t.path for t in catalog)]
    allowed = sorted({str(Path(f).resolve()).rstrip("/") + "/" for f in folders})
    con.execute(f"SET allowed_directories = [{', '.join(_literal(a) for a in allowed)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def run_query(sql: str, lake_root: Path, naming: Naming) -> QueryResult:
    """Run one read-only Athena statement on the local lake; rows keep Athena's types."""
    lake_root = Path(lake_root)
    catalog = local_catalog(lake_root, naming)
    meta = _meta(sql, lake_root, naming, catalog)
    if meta is not None:
        return meta
    statement = _parse(sql)
    catalog += iceberg_read.bind(statement, lake_root, naming, TableInfo, QueryError)  # time travel, "t$files"
    _resolve_tables(statement, catalog)
    con, unreadable = _open(catalog, naming)
    try:
        _refuse_unreadable(statement, unreadable)
        catalog = [t for t in catalog if t.name not in unreadable]
        duck_sql, zones, precisions = _to_duckdb(statement, _schema(con, catalog))
        _sandbox(con, lake_root, catalog)
        try:
            relation = con.sql(duck_sql)
            columns, types = relation.columns, [_athena_type(t) for t in relation.types]
            rows = relation.fetchall()
        except duckdb.Error as e:
            if isinstance(e, duckdb.InvalidInputException):  # a failing row: Cannot cast 'abc' to INT
                raise QueryError(str(e)) from None
            missing = re.search(r"Scalar Function with name (\w+) does not exist", str(e))
            if isinstance(e, duckdb.CatalogException) and missing:
                raise unsupported(
                    f"the function {missing.group(1)}", "DuckDB has no such function and dw does not define it"
                ) from None
            unresolved = isinstance(e, duckdb.BinderException) and "mbiguous" not in str(e)
            problem = _column_problem(statement, catalog, con) if unresolved else None
            raise QueryError(problem or f"{e}\n-- the query as DuckDB ran it:\n{duck_sql}") from None
    finally:
        con.close()
    if len(precisions) == len(types):  # a timestamp(6) is written to the microsecond
        types = [f"timestamp({p})" if p and t == "timestamp" else t for t, p in zip(types, precisions, strict=True)]
    if any(z not in (None, "UTC") for z in zones) and len(zones) == len(columns):
        rows = [tuple(_in_zone(v, z) for v, z in zip(row, zones, strict=True)) for row in rows]
    return QueryResult(list(columns), types, rows)


def _in_zone(value, zone: str | None):
    """A zoned result as Trino shows it: the instant in the value's own zone."""
    if zone in (None, "UTC") or not isinstance(value, datetime):
        return value
    if match := re.fullmatch(r"([+-])(\d{2}):(\d{2})", zone):
        sign, hours, minutes = match.groups()
        offset = timedelta(hours=int(hours), minutes=int(minutes)) * (-1 if sign == "-" else 1)
        return value.astimezone(timezone(offset))
    return value.astimezone(ZoneInfo(zone))


# ---------------------------------------------------------------- Athena's text of a value


def athena_text(value, athena_type: str = "") -> str | None:
    """A value as Athena's CSV results write it: true, 1.50, 2024-01-31 23:30:00.000 UTC,
    [a, NULL] for arrays, {k=v} for maps and rows, 2 03:00:00.000 for a day-to-second interval;
    None for SQL NULL (an empty field)."""
    if value is None:
        return None
    return _text(value, athena_type)


def _text(value, athena_type: str) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _java_double(value, real=athena_type == "real")
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        digits = int(athena_type[10]) if re.fullmatch(r"timestamp\([4-6]\)", athena_type) else 3
        fraction = f"{value.microsecond:06d}"[:digits]
        text = f"{value.year:04d}-" + value.strftime("%m-%d %H:%M:%S") + f".{fraction}"
        if value.tzinfo is not None:
            text += " " + _zone_label(value)
        return text
    if isinstance(value, date):
        return f"{value.year:04d}-" + value.strftime("%m-%d")
    if isinstance(value, time):
        return value.strftime("%H:%M:%S") + f".{value.microsecond // 1000:03d}"
    if isinstance(value, timedelta):
        sign = "-" if value < timedelta(0) else ""
        value = abs(value)
        hours, rest = divmod(value.seconds, 3600)
        minutes, seconds = divmod(rest, 60)
        return f"{sign}{value.days} {hours:02d}:{minutes:02d}:{seconds:02d}.{value.microseconds // 1000:03d}"
    if isinstance(value, bytes | bytearray | memoryview):
        return " ".join(f"{b:02x}" for b in bytes(value))
    inner = _inner_types(athena_type)
    if isinstance(value, dict):
        key_type, value_type = inner if len(inner) == 2 else ("", "")
        if athena_type.startswith("row("):
            fields = _row_fields(athena_type)
            return "{" + ", ".join(f"{k}={_text(v, fields.get(k, ''))}" for k, v in value.items()) + "}"
        return "{" + ", ".join(f"{_text(k, key_type)}={_text(v, value_type)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        element = inner[0] if inner else ""
        return "[" + ", ".join(_text(v, element) for v in value) + "]"
    return str(value)


def _zone_label(value: datetime) -> str:
    key = getattr(value.tzinfo, "key", None) or getattr(value.tzinfo, "zone", None)
    if key and key not in ("UTC", "Etc/UTC"):
        return key
    offset = value.utcoffset() or timedelta(0)
    if not offset:
        return "UTC"
    minutes = int(offset.total_seconds()) // 60
    return f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _java_double(value: float, real: bool = False) -> str:
    """Java's Double.toString (Float.toString for real), which Athena's results use."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1, value) < 0 else "0.0"
    shortest = repr(value) if not real else _float32_repr(value)
    digits, exponent = _digits(shortest)
    sign = "-" if value < 0 else ""
    if 1e-3 <= abs(value) < 1e7:
        point = exponent + 1
        if point <= 0:
            return f"{sign}0.{'0' * -point}{digits}"
        whole, fraction = digits[:point].ljust(point, "0"), digits[point:]
        return f"{sign}{whole}.{fraction or '0'}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exponent}"


def _float32_repr(value: float) -> str:
    import numpy  # only for real columns

    return numpy.format_float_scientific(numpy.float32(value), unique=True, trim="-")


def _digits(text: str) -> tuple[str, int]:
    """('12345', 2) for 123.45: the significant digits and the power of ten of the first."""
    mantissa, _, exp_text = text.lower().lstrip("-").partition("e")
    whole, _, fraction = mantissa.partition(".")
    exponent = int(exp_text or 0)
    all_digits = whole + fraction
    stripped = all_digits.lstrip("0")
    lead = len(all_digits) - len(stripped)
    return stripped.rstrip("0") or "0", exponent + len(whole) - 1 - lead


def _inner_types(athena_type: str) -> list[str]:
    """array(varchar) -> [varchar]; map(varchar, bigint) -> [varchar, bigint]."""
    if "(" not in athena_type:
        return []
    return _type_parts(athena_type[athena_type.index("(") + 1 : -1])


def _row_fields(athena_type: str) -> dict[str, str]:
    fields = {}
    for part in _inner_types(athena_type):
        name, _, kind = part.partition(" ")
        fields[name] = kind
    return fields
