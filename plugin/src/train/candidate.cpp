#include "dataproxy/candidate.h"

#include <torch/torch.h>

#include <string>

#include "dataproxy/error.h"
#include "dataproxy/files.h"
#include "dataproxy/model.h"
#include "dataproxy/version.h"

namespace dataproxy {
namespace {

// Bits of a bool vector, eight to a byte, the first in the highest bit (numpy.packbits).
std::string pack_bits(const torch::Tensor& bits) {
  const torch::Tensor b = bits.to(torch::kCPU, torch::kBool).contiguous();
  const bool* p = b.data_ptr<bool>();
  std::string out(static_cast<std::size_t>((b.numel() + 7) / 8), '\0');
  for (int64_t i = 0; i < b.numel(); ++i) {
    if (p[i]) out[i / 8] = static_cast<char>(out[i / 8] | (0x80 >> (i % 8)));
  }
  return out;
}

InputShape shape_of(const Dataset& d) { return {d.channels(), d.height(), d.width()}; }

int64_t classes_of(const PhaseData& p) {
  return p.num_classes > 0 ? p.num_classes : p.train->num_classes;
}

}  // namespace

const char* to_string(CandidatePhase phase) {
  return phase == CandidatePhase::kProxy ? "proxy" : "full";
}

CandidateOutcome train_candidate(const SearchSpace& space, const Config& config,
                                 const CandidateData& data, const CandidateOptions& options,
                                 Reporter& reporter, CandidateObserver* observer) {
  DATAPROXY_CHECK(data.proxy.train || data.full.train, InvalidInput,
                  "train_candidate: no data to train on (set the proxy phase, the full phase, "
                  "or both)");
  DATAPROXY_CHECK(options.proxy_epochs >= 0, InvalidInput,
                  "proxy epochs must be >= 0 (0 = the run's epochs), got " << options.proxy_epochs);
  DATAPROXY_CHECK(options.proxy_steps >= 0, InvalidInput,
                  "proxy steps must be >= 0 (0 = by epochs), got " << options.proxy_steps);
  const int64_t epochs = options.train.epochs > 0 ? options.train.epochs : space.training().epochs;
  const int64_t proxy_epochs = options.proxy_epochs > 0 ? options.proxy_epochs : epochs;

  CandidateOutcome out;
  TrialRecord& rec = out.record;
  rec.config = config;
  rec.config_id = space.config_id(config);
  rec.training.epochs = epochs;
  rec.training.proxy_epochs = data.proxy.train ? proxy_epochs : 0;
  rec.training.seed = options.train.seed;
  rec.training.tool_version = kVersion;
  rec.training.threads = configure_threads(options.train.threads);
  TrialTiming timing;
  timing.eval_subset = options.train.evaluate_each_epoch ? options.train.eval_subset : 0;
  rec.timing = timing;
  {
    const PhaseData& first = data.proxy.train ? data.proxy : data.full;
    const ModelCost cost = model_cost(space, config, shape_of(*first.train), classes_of(first));
    rec.macs = cost.macs;
    rec.params = cost.params;
  }

  auto run_phase = [&](CandidatePhase phase, const PhaseData& p) -> bool {
    const bool proxy = phase == CandidatePhase::kProxy;
    TrainOptions topts = options.train;
    topts.epochs = proxy ? proxy_epochs : epochs;
    if (proxy && options.proxy_steps > 0) {
      const int64_t batch = topts.batch_size > 0 ? topts.batch_size : space.training().batch_size;
      const int64_t batches = (p.train->size() + batch - 1) / batch;
      topts.max_steps = options.proxy_steps;
      topts.epochs = (options.proxy_steps + batches - 1) / batches;  // what the observer is told
    }
    topts.threads = rec.training.threads;
    if (observer) observer->phase_started(phase);
    Trainer trainer(space.training(), topts, reporter);
    seed_everything(options.train.seed);
    auto model = build_model(space, config, shape_of(*p.train), classes_of(p));
    const Dataset empty;
    const Dataset& test = p.test ? *p.test : empty;
    std::vector<double>& curve = proxy ? rec.proxy_curve : rec.training.full_curve;
    const TrainResult r = trainer.fit(*model, *p.train, test, [&](const EpochStats& s) {
      if (s.test_accuracy >= 0) curve.push_back(s.test_accuracy);
      return observer ? observer->epoch_done(phase, s, topts.epochs) : true;
    });
    rec.timing->train += r.train_seconds;
    rec.timing->eval += r.eval_seconds;
    rec.device = r.device;
    rec.training.memory_format = to_string(r.memory_format);
    rec.training.steps = r.steps;
    rec.training.samples_seen = r.samples_seen;
    if (topts.max_steps > 0) {  // the epochs a step budget came to (the last may be partial)
      const auto ran = static_cast<int64_t>(r.epochs.size());
      if (proxy) rec.training.proxy_epochs = ran;
      if (!proxy || options.train.max_steps > 0) rec.training.epochs = ran;
    }
    rec.data.train_size = p.train->size();
    rec.data.test_size = test.size();
    rec.data.num_classes = classes_of(p);
    if (proxy) {
      rec.proxy_seconds = r.train_seconds;
    } else {
      rec.full_seconds = r.train_seconds;
      rec.spot_check = true;
    }
    if (r.stopped_early) return false;
    (proxy ? rec.proxy_accuracy : rec.full_accuracy) = r.final_accuracy;
    rec.timing->eval_final = r.final_eval_samples;
    if (options.record_correct && r.final_correct.defined()) {
      rec.correct =
          Correctness{proxy ? "evaluation" : "test", base64_encode(pack_bits(r.final_correct))};
    }
    return true;
  };

  CandidatePhase phase = data.proxy.train ? CandidatePhase::kProxy : CandidatePhase::kFull;
  bool done = true;
  if (data.proxy.train) done = run_phase(phase, data.proxy);
  if (done && data.full.train) {
    phase = CandidatePhase::kFull;
    done = run_phase(phase, data.full);
  }
  out.stopped = !done;
  if (out.stopped) {
    out.stopped_in = phase;
    rec.status = "interrupted";
    if (!rec.proxy_curve.empty() && !rec.proxy_accuracy)
      rec.proxy_accuracy = rec.proxy_curve.back();
  } else {
    rec.status = "complete";
  }
  rec.finished = utc_now();
  return out;
}

}  // namespace dataproxy
