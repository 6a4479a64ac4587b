#include "core/service_file.h"

#include <map>

#include "core/doc.h"
#include "core/service_decode.h"
#include "core/yaml.h"

namespace cb {

namespace {

Checked<std::vector<ServiceSpec>> Decode(const std::optional<Node>& root, Decoder& d) {
  std::vector<ServiceSpec> out;
  std::map<std::string, size_t> seen;
  if (root) {
    if (root->IsNull()) {
      d.Add(root->mark, "", "the file is empty", "a map with a 'services' list", "nothing");
    } else if (d.Map(*root, "", {"services"})) {
      if (const Node* list = d.Require(*root, "services", "")) {
        if (d.Seq(*list, "services")) {
          for (size_t i = 0; i < list->items.size(); ++i) {
            const Node& item = list->items[i];
            std::string path = IndexPath("services", i);
            auto spec = DecodeServiceSpec(d, item, path);
            if (!spec) continue;
            if (auto it = seen.find(spec->name); it != seen.end()) {
              const Node* name = item.Find("name");
              d.Add(name ? name->mark : item.mark, JoinPath(path, "name"),
                    "duplicate service name '" + spec->name + "' (also services[" +
                        std::to_string(it->second) + "])",
                    "a unique name", spec->name);
            } else {
              seen[spec->name] = i;
            }
            out.push_back(std::move(*spec));
          }
        }
      }
    }
  }
  if (!d.ok()) return tl::unexpected(d.TakeProblems());
  return out;
}

}  // namespace

Checked<std::vector<ServiceSpec>> ParseServiceFile(std::string_view text, const std::string& file) {
  Decoder d(file);
  auto root = ParseYaml(text, d);
  return Decode(root, d);
}

Checked<std::vector<ServiceSpec>> LoadServiceFile(const std::string& path) {
  Decoder d(path);
  auto root = LoadYamlFile(path, d);
  return Decode(root, d);
}

}  // namespace cb
