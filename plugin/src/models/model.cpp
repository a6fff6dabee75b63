#include "dataproxy/model.h"

#include "dataproxy/error.h"
#include "models/networks.h"
#include "models/torchscript.h"

namespace dataproxy {
namespace {

void check_shape(const InputShape& input, int64_t num_classes) {
  DATAPROXY_CHECK(input.channels > 0 && input.height > 0 && input.width > 0, InvalidInput,
                  "input shape " << input.channels << "x" << input.height << "x" << input.width
                                 << " is not a valid image shape; give positive channels, "
                                    "height and width");
  DATAPROXY_CHECK(num_classes >= 2, InvalidInput,
                  "a classifier needs at least 2 classes, got " << num_classes);
}

}  // namespace

std::shared_ptr<Network> build_model(const SearchSpace& space, const Config& config,
                                     const InputShape& input, int64_t num_classes) {
  check_shape(input, num_classes);
  const Config c = space.validate(config);
  if (space.family() == "resnet") {
    return models::build_resnet(models::ResNetSpec::from(space, c), input, num_classes);
  }
  if (space.family() == "efficientnet") {
    return models::build_efficientnet(models::EfficientNetSpec::from(space, c), input, num_classes);
  }
  if (space.family() == "torchscript") {
    return models::load_torchscript(space, c, input, num_classes);
  }
  throw InvalidInput("search space '" + space.name() + "' has model family '" + space.family() +
                     "', which has no model builder; use resnet, efficientnet or torchscript");
}

ModelCost model_cost(const SearchSpace& space, const Config& config, const InputShape& input,
                     int64_t num_classes) {
  check_shape(input, num_classes);
  const Config c = space.validate(config);
  ModelCost cost;
  if (space.family() == "torchscript") {
    // Counted by the export helper in Python; nothing is loaded here.
    const auto e = models::find_torchscript_export(space, c, input, num_classes);
    return ModelCost{e.macs, e.params};
  }
  if (space.family() == "resnet") {
    cost.macs = models::resnet_macs(models::ResNetSpec::from(space, c), input, num_classes);
  } else {
    cost.macs =
        models::efficientnet_macs(models::EfficientNetSpec::from(space, c), input, num_classes);
  }
  torch::NoGradGuard no_grad;
  for (const auto& p : build_model(space, c, input, num_classes)->parameters()) {
    if (p.requires_grad()) cost.params += p.numel();
  }
  return cost;
}

}  // namespace dataproxy
