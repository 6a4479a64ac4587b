#include "controlplane/spec_adapter.h"

#include <nlohmann/json.hpp>

#include "core/spec.h"

namespace cb::cp {

DeriveFn MakeSpecDeriver() {
  return [](const std::string& yaml, const std::string& filename) -> Result<DesiredState> {
    CB_TRY(FleetSpec spec, ParseFleetSpecOrError(yaml, filename));
    auto by_host = DeriveServicesByHost(spec);
    DesiredState d;
    for (const auto& h : spec.hosts) {
      DesiredHost dh;
      dh.name = h.name;
      dh.address = h.address;
      dh.agent_socket = h.agent_socket;
      auto it = by_host.find(h.name);
      if (it != by_host.end()) dh.services = it->second;
      std::sort(dh.services.begin(), dh.services.end(),
                [](const ServiceSpec& a, const ServiceSpec& b) { return a.name < b.name; });
      d.hosts.push_back(std::move(dh));
    }
    std::sort(d.hosts.begin(), d.hosts.end(), [](const DesiredHost& a, const DesiredHost& b) { return a.name < b.name; });
    d.spec_json = SpecToJson(spec);
    return d;
  };
}

}  // namespace cb::cp
