// SQL text helpers for libcbdb. Identifiers are ALWAYS quoted (mixed case, spaces and quotes
// survive); literals are single-quoted with standard_conforming_strings semantics. Names taken
// from users never reach SQL any other way. Pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "core/result.h"

namespace cb::db {

// "ev""il" for ev"il. Refuses nothing; NUL bytes are dropped (Postgres cannot store them).
std::string QuoteIdent(std::string_view name);
// 'it''s' for it's. NUL bytes are dropped.
std::string QuoteLiteral(std::string_view value);
// "schema"."table"
std::string QualifiedName(std::string_view schema, std::string_view table);

// A table name as the user typed it: "event_log", "public.event_log", "\"Mixed Case\"",
// "app.\"Events 2\"". Unquoted parts are folded to lower case like Postgres does; quoted parts
// are kept exactly. The schema is empty when not given (resolved with the search_path).
struct TableName {
  std::string schema;
  std::string table;
};
Result<TableName> ParseTableName(std::string_view text);

// A Postgres identifier of at most 63 bytes built from `base` + `suffix`: base is cut (at a
// UTF-8 boundary) so the suffix always survives.
std::string DerivedName(std::string_view base, std::string_view suffix);

}  // namespace cb::db
