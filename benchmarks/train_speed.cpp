// Training speed of the LibTorch trainer, for comparison with Python PyTorch eager
// (train_speed_torch.py; both driven by run_train_speed.sh). Prints one JSON object:
//  compute: images/s of forward + backward + optimizer step on one in-memory batch;
//  epoch:   one Trainer::fit() epoch (on-device gather, crop/flip, normalisation) over the
//           first --train-limit training images (0 = all).
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <iostream>
#include <sstream>

#include "dataproxy/dataset.h"
#include "dataproxy/error.h"
#include "dataproxy/model.h"
#include "dataproxy/search_space.h"
#include "dataproxy/trainer.h"
#include "train/autocast.h"

namespace po = boost::program_options;
using namespace dataproxy;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Images per second of plain training steps on one fixed batch, as the trainer runs them.
double compute_speed(Network& net, const TrainSettings& settings, const InputShape& input,
                     int64_t classes, int64_t batch, int warmup, int iters,
                     const torch::Device& device, bool channels_last) {
  net.to(device);
  net.train();
  if (channels_last) {
    torch::NoGradGuard no_grad;
    for (auto& p : net.parameters()) {
      if (p.dim() == 4) p.set_data(p.data().contiguous(torch::MemoryFormat::ChannelsLast));
    }
  }
  torch::optim::Adam optimizer(
      net.parameters(),
      torch::optim::AdamOptions(settings.learning_rate).weight_decay(settings.weight_decay));
  auto x = torch::randn({batch, input.channels, input.height, input.width}).to(device);
  if (channels_last) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  auto y = torch::randint(0, classes, {batch}, torch::kInt64).to(device);
  auto params = net.parameters();
  torch::Tensor loss;
  auto step = [&] {
    for (auto& p : params) {
      if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
    }
    torch::Tensor logits;
    {
      dataproxy::detail::AutocastGuard autocast(device.is_cuda());
      logits = net.forward(x);
    }
    loss = torch::nn::functional::cross_entropy(logits.to(torch::kFloat), y);
    loss.backward();
    optimizer.step();
  };
  for (int i = 0; i < warmup; ++i) step();
  loss.item<float>();  // waits for the device
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) step();
  loss.item<float>();
  return double(batch) * iters / seconds_since(start);
}

// Images per second of forward passes in eval and inference mode, as evaluation runs them.
double forward_speed(Network& net, const InputShape& input, int64_t batch, int warmup, int iters,
                     const torch::Device& device, bool channels_last) {
  net.to(device);
  net.eval();
  auto x = torch::randn({batch, input.channels, input.height, input.width}).to(device);
  if (channels_last) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  c10::InferenceMode inference;
  torch::Tensor out;
  for (int i = 0; i < warmup; ++i) out = net.forward(x).argmax(1);
  out.cpu();
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) out = net.forward(x).argmax(1);
  out.cpu();
  net.train();
  return double(batch) * iters / seconds_since(start);
}

}  // namespace

int main(int argc, char** argv) {
  po::options_description desc("train_speed options");
  desc.add_options()("help,h", "this help")(
      "data", po::value<std::string>()->default_value(DATAPROXY_SOURCE_DIR_DEFAULT "/data"),
      "dataset root for load_dataset")(
      "dataset", po::value<std::string>()->default_value("cifar10"), "dataset name")(
      "space",
      po::value<std::string>()->default_value(DATAPROXY_SOURCE_DIR_DEFAULT
                                              "/search_spaces/resnet20.yaml"),
      "search space file")("config",
                           po::value<std::string>()->default_value(R"({"B":16,"K":3,"M":2})"),
                           "configuration as JSON")(
      "device", po::value<std::string>()->default_value("cpu"), "cpu, cuda, cuda:N or auto")(
      "threads", po::value<int>()->default_value(2), "CPU threads")(
      "batch", po::value<int64_t>()->default_value(128), "batch size")(
      "warmup", po::value<int>()->default_value(5), "untimed compute steps")(
      "iters", po::value<int>()->default_value(30), "timed compute steps")(
      "train-limit", po::value<int64_t>()->default_value(10000),
      "training images in the timed epoch (0 = all)")(
      "channels-last", po::value<int>()->default_value(1), "1 = channels_last, 0 = NCHW")(
      "skip-epoch", po::bool_switch(), "measure compute only")(
      "input", po::value<std::string>()->default_value("3x32x32"),
      "input shape CxHxW of the compute and forward measures")(
      "eval-batches", po::value<std::string>()->default_value(""),
      "comma-separated eval batch sizes, or auto (what evaluation picks): forward-only "
      "images/s at each (empty = none)");
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << desc << '\n';
      return 0;
    }
    const auto device = resolve_device(vm["device"].as<std::string>());
    const int threads = configure_threads(vm["threads"].as<int>());
    const auto space = SearchSpace::load(vm["space"].as<std::string>());
    const auto config = space.validate(nlohmann::json::parse(vm["config"].as<std::string>()));
    const bool channels_last = vm["channels-last"].as<int>() != 0;
    const int64_t batch = vm["batch"].as<int64_t>();
    const int64_t train_limit = vm["train-limit"].as<int64_t>();

    nlohmann::json out = {{"program", "train_speed.cpp"},
                          {"torch_version", TORCH_VERSION},
                          {"device", device.str()},
                          {"threads", threads},
                          {"space", space.name()},
                          {"config", space.config_id(config)},
                          {"batch", batch},
                          {"channels_last", channels_last}};
    InputShape cifar{3, 32, 32};
    {
      const auto text = vm["input"].as<std::string>();
      char x1 = 0, x2 = 0;
      std::istringstream in(text);
      in >> cifar.channels >> x1 >> cifar.height >> x2 >> cifar.width;
      DATAPROXY_CHECK(
          in && x1 == 'x' && x2 == 'x' && cifar.channels > 0 && cifar.height > 0 && cifar.width > 0,
          InvalidInput, "--input '" << text << "': use CxHxW, e.g. 1x28x28");
    }
    seed_everything(0);
    auto net = build_model(space, config, cifar, 10);
    int64_t params = 0;
    for (const auto& p : net->parameters()) params += p.numel();
    out["parameters"] = params;
    out["compute_images_per_second"] =
        compute_speed(*net, space.training(), cifar, 10, batch, vm["warmup"].as<int>(),
                      vm["iters"].as<int>(), device, channels_last);

    {
      std::istringstream list(vm["eval-batches"].as<std::string>());
      std::string item;
      nlohmann::json forward = nlohmann::json::object();
      while (std::getline(list, item, ',')) {
        if (item.empty()) continue;
        int64_t eval_batch = 0;
        if (item == "auto") {
          // What evaluation picks for this network, device and thread count.
          eval_batch = eval_batch_size_for(TrainOptions{}, device, *net,
                                           {cifar.channels, cifar.height, cifar.width});
          out["auto_eval_batch"] = eval_batch;
        } else {
          eval_batch = std::stoll(item);
        }
        DATAPROXY_CHECK(eval_batch > 0, InvalidInput,
                        "--eval-batches holds " << eval_batch << ": use positive sizes or auto");
        const int iters = std::max<int>(3, int(20000 / eval_batch));
        forward[item] = forward_speed(*net, cifar, eval_batch, 2, iters, device, channels_last);
      }
      if (!forward.empty()) out["forward_images_per_second"] = forward;
    }

    if (!vm["skip-epoch"].as<bool>()) {
      LoadOptions load;
      load.max_train = train_limit;
      load.max_test = 1;
      auto data = load_dataset(vm["dataset"].as<std::string>(), vm["data"].as<std::string>(), load);
      TrainOptions options;
      options.device = device.str();
      options.threads = threads;
      options.epochs = 1;
      options.batch_size = batch;
      options.memory_format =
          channels_last ? MemoryFormat::kChannelsLast : MemoryFormat::kContiguous;
      seed_everything(0);
      auto fresh = build_model(space, config, cifar, 10);
      Trainer trainer(space.training(), options);
      auto result = trainer.fit(*fresh, data.train, Dataset{});
      out["epoch"] = {{"images", data.train.size()},
                      {"seconds", result.epochs[0].seconds},
                      {"images_per_second", result.epochs[0].images_per_second},
                      {"seconds_with_upload", result.total_seconds},
                      {"train_loss", result.epochs[0].train_loss}};
    }
    std::cout << out.dump(2) << std::endl;
    return 0;
  } catch (const Error& e) {
    std::cerr << "train_speed: " << e.what() << '\n';
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "train_speed: " << e.what() << '\n';
    return 1;
  }
}
