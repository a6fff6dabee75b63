// Training one candidate configuration and recording what it did: the one train-and-record
// loop behind `dataproxy-trial`, `dataproxy evaluate` and `dataproxy calibrate`.
#pragma once

#include <cstdint>

#include "dataproxy/dataset.h"
#include "dataproxy/progress.h"
#include "dataproxy/results.h"
#include "dataproxy/search_space.h"
#include "dataproxy/trainer.h"

namespace dataproxy {

/// The two trainings of a candidate: on a data proxy, and on the full data (a spot check).
enum class CandidatePhase { kProxy, kFull };
/// "proxy" or "full".
const char* to_string(CandidatePhase phase);

/// A training split and the split its accuracy is measured on. The datasets must outlive the
/// call; an unset `train` skips the phase.
struct PhaseData {
  const Dataset* train = nullptr;
  const Dataset* test = nullptr;  ///< nullptr or empty: no evaluation
  int64_t num_classes = 0;        ///< the network's outputs; 0 = train->num_classes
};

/// What to train a candidate on. At least one phase must be set; the proxy phase runs first.
struct CandidateData {
  PhaseData proxy;  ///< the proxy's training set and its evaluation split
  PhaseData full;   ///< the full training set and the ranking split (a spot check)
};

/// How to train a candidate.
struct CandidateOptions {
  /// Device, threads, seed, evaluation subset, and the full-data length (epochs or max_steps;
  /// epochs 0 = the space's).
  TrainOptions train;
  int64_t proxy_epochs = 0;  ///< epochs of the proxy phase; 0 = train.epochs
  /// Optimizer steps of the proxy phase, the learning-rate schedule spanning them (a proxy
  /// length that is not a whole number of epochs); 0 = by epochs. Wins over proxy_epochs.
  int64_t proxy_steps = 0;
  bool record_correct = false;  ///< per-test-sample correctness of the last phase in the record
};

/// Told what train_candidate() does as it goes; the defaults do nothing.
class CandidateObserver {
 public:
  virtual ~CandidateObserver() = default;
  /// A phase begins (its network is about to be built).
  virtual void phase_started(CandidatePhase) {}
  /// After each epoch; return false to stop the candidate (pruning, a signal).
  virtual bool epoch_done(CandidatePhase, const EpochStats&, int64_t /*epochs*/) { return true; }
};

/// What train_candidate() produced.
struct CandidateOutcome {
  /// config, config_id, macs, params, device, the accuracies, seconds and curves of the phases
  /// run, spot_check, `training`, `data`'s sizes, `correct` when asked, and the timing's
  /// train/eval/eval_subset/eval_final. status is "complete", or "interrupted" when stopped
  /// by the observer (the proxy accuracy is then the last epoch's, if any). The caller sets the
  /// identity (trial_id, framework, manifest_key, data's names) and the rest of the timing.
  TrialRecord record;
  bool stopped = false;                                ///< the observer asked to stop
  CandidatePhase stopped_in = CandidatePhase::kProxy;  ///< with `stopped`
};

/// Trains `config` of `space` on the proxy phase, then the full phase, of `data`: seeded with
/// options.train.seed before each network is built, so a seed gives the same weights whoever
/// calls it. Progress goes to `reporter`; an exception it throws (Interrupted, to stop at once)
/// propagates, and the observer has seen every finished epoch. Throws InvalidInput for
/// unusable data or options.
CandidateOutcome train_candidate(const SearchSpace& space, const Config& config,
                                 const CandidateData& data, const CandidateOptions& options,
                                 Reporter& reporter = null_reporter(),
                                 CandidateObserver* observer = nullptr);

}  // namespace dataproxy
