"""ES|QL: a parser for the supported commands and an in-process evaluator with Elasticsearch's semantics."""

from dac.query.esql.evaluator import EsqlProgram, compile_esql
from dac.query.esql.parser import parse_esql, referenced_fields
from dac.query.esql.syntax import EsqlQuery
from dac.query.fields import FieldRef

__all__ = ["EsqlProgram", "EsqlQuery", "FieldRef", "compile_esql", "parse_esql", "referenced_fields"]
