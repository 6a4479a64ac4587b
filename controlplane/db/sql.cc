#include "controlplane/db/sql.h"

#include <cctype>
#include <vector>

// GCC 12 at -O2 reports false "maybe-uninitialized" on std::string moved out of tl::expected.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace cb::db {

std::string QuoteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '\0') continue;
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string QuoteLiteral(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\0') continue;
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

std::string QualifiedName(std::string_view schema, std::string_view table) {
  if (schema.empty()) return QuoteIdent(table);
  return QuoteIdent(schema) + "." + QuoteIdent(table);
}

Result<TableName> ParseTableName(std::string_view text) {
  std::vector<std::string> parts;
  std::string cur;
  size_t i = 0;
  bool any = false;
  while (i < text.size()) {
    char c = text[i];
    if (c == '"') {
      ++i;
      bool closed = false;
      while (i < text.size()) {
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            cur.push_back('"');
            i += 2;
            continue;
          }
          closed = true;
          ++i;
          break;
        }
        cur.push_back(text[i++]);
      }
      if (!closed) return Err(Code::kInvalidArgument, "table name '{}': unterminated double quote", text);
      any = true;
    } else if (c == '.') {
      if (!any) return Err(Code::kInvalidArgument, "table name '{}': empty name part", text);
      parts.push_back(cur);
      cur.clear();
      any = false;
      ++i;
    } else {
      cur.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
      any = true;
      ++i;
    }
  }
  if (!any) return Err(Code::kInvalidArgument, "table name '{}': empty name part", text);
  parts.push_back(cur);
  if (parts.size() > 2) {
    return Err(Code::kInvalidArgument, "table name '{}': expected TABLE or SCHEMA.TABLE (quote names containing dots)",
               text);
  }
  TableName t;
  if (parts.size() == 2) {
    t.schema = parts[0];
    t.table = parts[1];
  } else {
    t.table = parts[0];
  }
  if (t.table.size() > 63) return Err(Code::kInvalidArgument, "table name '{}': longer than 63 bytes", text);
  return t;
}

std::string DerivedName(std::string_view base, std::string_view suffix) {
  size_t room = suffix.size() >= 63 ? 0 : 63 - suffix.size();
  std::string b(base.substr(0, std::min(room, base.size())));
  // Do not cut a UTF-8 sequence in half.
  while (!b.empty() && b.size() < base.size() && (static_cast<unsigned char>(base[b.size()]) & 0xC0) == 0x80) {
    b.pop_back();
  }
  return b + std::string(suffix);
}

}  // namespace cb::db
