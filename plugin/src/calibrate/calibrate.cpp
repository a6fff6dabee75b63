#include "dataproxy/calibrate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

#include "dataproxy/candidate.h"
#include "dataproxy/error.h"
#include "dataproxy/files.h"
#include "dataproxy/manifest.h"
#include "dataproxy/model.h"
#include "dataproxy/results.h"
#include "dataproxy/search_space.h"
#include "dataproxy/stats.h"
#include "dataproxy/version.h"

namespace dataproxy {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int64_t kMinCandidates = 4;
constexpr int64_t kDefaultSearchTrials = 100;

std::string percent(double ratio) {
  std::ostringstream os;
  os << ratio * 100 << "%";
  return os.str();
}

// What a plan trains, before the budget may cut it.
struct Plan {
  std::vector<ProxyChoice> choices;
  int64_t candidates = 0;
  int64_t seeds = 0;
  std::vector<std::string> notes;
};

struct Candidate {
  Config config;
  std::string id;
  ModelCost cost;
};

std::vector<Candidate> pick_candidates(const SearchSpace& space, const InputShape& input,
                                       int64_t classes, int64_t count) {
  MacsProbeChooser chooser;
  std::vector<Candidate> out;
  for (const Config& c : chooser.choose(space, input, classes, count)) {
    out.push_back({c, space.config_id(c), model_cost(space, c, input, classes)});
  }
  return out;
}

// Compute of a plan in mean full-data trials of the space (MACs x samples x epochs).
double plan_cost(const Plan& plan, const std::vector<Candidate>& cands, double mean_macs,
                 double probe_epoch_ratio) {
  double full = 0, proxy_unit = 0;
  for (std::size_t i = 0; i < cands.size(); ++i) {
    const double rel = static_cast<double>(cands[i].cost.macs) / mean_macs;
    const bool probe = i == 0 || i + 1 == cands.size();
    full += probe ? rel * probe_epoch_ratio : rel;
    proxy_unit += rel;
  }
  double proxies = 0;
  for (const auto& c : plan.choices) proxies += c.ratio * c.length * proxy_unit;
  return full + static_cast<double>(plan.seeds) * proxies;
}

// A proxy length as training: whole epochs where length x epochs is a whole number, else that
// many epochs' worth of optimizer steps on `train_size` images (e.g. the full data for 5% of the
// space's steps), so that a choice costs exactly ratio x length of a full-data trial.
struct LengthPlan {
  int64_t epochs = 1;
  int64_t steps = 0;  ///< 0 = whole epochs
};

LengthPlan length_plan(int64_t space_epochs, double length, int64_t train_size,
                       int64_t batch_size) {
  const double epochs = static_cast<double>(space_epochs) * length;
  const double whole = std::round(epochs);
  if (whole >= 1 && std::abs(epochs - whole) < 1e-6) return {static_cast<int64_t>(whole), 0};
  const int64_t batches = (train_size + batch_size - 1) / batch_size;
  const int64_t steps = std::max<int64_t>(1, std::llround(epochs * static_cast<double>(batches)));
  return {(steps + batches - 1) / batches, steps};
}

std::string run_key(const json& deciding) { return sha256_hex(deciding.dump()).substr(0, 32); }

// Mean over seeds of a statistic, skipping undefined (NaN) seeds.
double nan_mean(const std::vector<double>& v) {
  double sum = 0;
  int64_t n = 0;
  for (double x : v) {
    if (!std::isnan(x)) {
      sum += x;
      ++n;
    }
  }
  return n > 0 ? sum / static_cast<double>(n) : kNaN;
}

// Percentile bootstrap over candidates (the same resample for every seed) of the mean Spearman
// over seeds: it holds both the few candidates' and the seeds' noise.
std::pair<double, double> spearman_interval(const std::vector<std::vector<double>>& proxy,
                                            const std::vector<double>& full, double confidence,
                                            uint64_t seed) {
  const std::size_t n = full.size();
  std::mt19937_64 rng(seed ^ 0x63616c6962ULL);
  std::vector<double> stats;
  const int resamples = 2000;
  std::vector<double> x(n), y(n);
  for (int b = 0; b < resamples; ++b) {
    std::vector<std::size_t> idx(n);
    for (auto& i : idx) i = static_cast<std::size_t>(rng() % n);
    std::vector<double> per_seed;
    for (const auto& p : proxy) {
      for (std::size_t k = 0; k < n; ++k) {
        x[k] = p[idx[k]];
        y[k] = full[idx[k]];
      }
      const Correlation c = spearman(x, y);
      if (c.defined) per_seed.push_back(c.value);
    }
    if (!per_seed.empty()) stats.push_back(nan_mean(per_seed));
  }
  if (stats.size() * 2 < static_cast<std::size_t>(resamples)) return {kNaN, kNaN};
  const double tail = (1 - confidence) / 2 * 100;
  return {percentile(stats, tail), percentile(stats, 100 - tail)};
}

void check_options(const CalibrateOptions& o, const std::vector<ProxyChoice>& choices) {
  DATAPROXY_CHECK(std::isfinite(o.target) && o.target > -1 && o.target <= 1, InvalidInput,
                  "--target " << o.target
                              << " is outside (-1, 1]: give the Spearman correlation a proxy's "
                                 "lower bound must reach, e.g. 0.9");
  DATAPROXY_CHECK(o.confidence > 0 && o.confidence < 1, InvalidInput,
                  "--confidence " << o.confidence << " is outside (0, 1), e.g. 0.9");
  DATAPROXY_CHECK(o.candidates >= kMinCandidates, InvalidInput,
                  "--candidates " << o.candidates << " is below " << kMinCandidates
                                  << ": a rank correlation over fewer candidates means nothing");
  DATAPROXY_CHECK(o.seeds >= 1, InvalidInput, "--seeds " << o.seeds << " must be 1 or more");
  DATAPROXY_CHECK(o.expected_trials >= 0, InvalidInput,
                  "--expected-trials " << o.expected_trials << " must be >= 0 (0 = no budget)");
  DATAPROXY_CHECK(o.budget_share > 0 && o.budget_share <= 1, InvalidInput,
                  "--budget-share " << o.budget_share << " is outside (0, 1], e.g. 0.1");
  DATAPROXY_CHECK(!choices.empty(), InvalidInput, "no proxy choice to calibrate");
  for (const auto& c : choices) {
    make_selection_method(c.method, o.importance);  // throws on an unknown name
    proxy_size(c.ratio, 1000000);                   // throws on a ratio outside (0, 1]
    DATAPROXY_CHECK(std::isfinite(c.length) && c.length > 0, InvalidInput,
                    "choice '" << c.name() << "': length must be > 0");
  }
}

// Cuts the plan until it fits the budget; throws when even the smallest plan does not.
Plan fit_budget(Plan plan, const CalibrateOptions& o, const SearchSpace& space,
                const InputShape& input, int64_t classes, double mean_macs,
                double probe_epoch_ratio, double& cost, double& budget) {
  budget = o.expected_trials > 0 ? o.budget_share * static_cast<double>(o.expected_trials) : 0;
  auto cost_of = [&](const Plan& p) {
    return plan_cost(p, pick_candidates(space, input, classes, p.candidates), mean_macs,
                     probe_epoch_ratio);
  };
  cost = cost_of(plan);
  if (budget <= 0) return plan;
  while (cost > budget) {
    if (plan.seeds > 2) {
      plan.seeds = 2;
      plan.notes.push_back("2 seeds per choice instead of " + std::to_string(o.seeds));
    } else if (std::count_if(plan.choices.begin(), plan.choices.end(),
                             [](const ProxyChoice& c) { return c.length > 1; }) > 0 &&
               std::count_if(plan.choices.begin(), plan.choices.end(),
                             [](const ProxyChoice& c) { return c.length <= 1; }) > 0) {
      plan.choices.erase(std::remove_if(plan.choices.begin(), plan.choices.end(),
                                        [](const ProxyChoice& c) { return c.length > 1; }),
                         plan.choices.end());
      plan.notes.push_back("longer proxy lengths dropped");
    } else if (plan.candidates > kMinCandidates) {
      --plan.candidates;
      plan.notes.push_back(std::to_string(plan.candidates) + " candidates");
    } else if (plan.seeds > 1) {
      plan.seeds = 1;
      plan.notes.push_back("1 seed per choice");
    } else {
      std::ostringstream os;
      os << std::setprecision(3) << "the budget (" << o.budget_share * 100 << "% of "
         << o.expected_trials << " full-data trials = " << budget
         << " mean full-data trainings) cannot buy the smallest calibration (" << kMinCandidates
         << " candidates, 1 seed, " << plan.choices.size() << " choices: " << cost
         << " mean full-data trainings); raise --expected-trials or --budget-share, or name "
            "fewer choices with --choice";
      throw InvalidInput(os.str());
    }
    cost = cost_of(plan);
  }
  return plan;
}

}  // namespace

std::string ProxyChoice::name() const {
  std::ostringstream os;
  os << method << ":" << ratio << ":" << length;
  return os.str();
}

ProxyChoice ProxyChoice::parse(const std::string& text) {
  ProxyChoice c;
  std::vector<std::string> parts;
  std::stringstream ss(text);
  for (std::string part; std::getline(ss, part, ':');) parts.push_back(part);
  DATAPROXY_CHECK(parts.size() == 2 || parts.size() == 3, InvalidInput,
                  "proxy choice '" << text
                                   << "' is not METHOD:RATIO[:LENGTH], e.g. importance:0.05:1 "
                                      "(LENGTH: proxy epochs as a multiple of the space's)");
  c.method = parts[0];
  try {
    std::size_t used = 0;
    c.ratio = std::stod(parts[1], &used);
    DATAPROXY_CHECK(used == parts[1].size(), InvalidInput, "");
    if (parts.size() == 3) {
      c.length = std::stod(parts[2], &used);
      DATAPROXY_CHECK(used == parts[2].size(), InvalidInput, "");
    }
  } catch (const std::exception&) {
    throw InvalidInput("proxy choice '" + text +
                       "': RATIO and LENGTH must be numbers, e.g. importance:0.05:1");
  }
  DATAPROXY_CHECK(std::isfinite(c.ratio) && c.ratio > 0 && c.ratio <= 1, InvalidInput,
                  "proxy choice '" << text << "': ratio " << c.ratio << " is outside (0, 1]");
  DATAPROXY_CHECK(std::isfinite(c.length) && c.length > 0, InvalidInput,
                  "proxy choice '" << text << "': length " << c.length << " must be > 0");
  return c;
}

std::vector<ProxyChoice> default_proxy_choices() {
  std::vector<ProxyChoice> out;
  for (double length : {1.0, 2.0}) {
    for (const char* method : {"importance", "random"}) {
      for (double ratio : {0.1, 0.05, 0.02}) out.push_back({method, ratio, length});
    }
  }
  // The full data for as many steps as each ratio's subset gets: EcoNAS's reduced training, which
  // the ranking benchmark found at least as good at equal cost on a converged reference.
  for (double fraction : {0.1, 0.05, 0.02}) out.push_back({"random", 1.0, fraction});
  return out;
}

json CalibrationResult::to_json() const {
  auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  json choices = json::array();
  for (const auto& s : scores) {
    json per_seed = json::array();
    for (std::size_t i = 0; i < s.spearman.size(); ++i) {
      per_seed.push_back({{"spearman", num(s.spearman[i])},
                          {"kendall", num(s.kendall[i])},
                          {"agreement", num(s.agreement[i])},
                          {"manifest", s.manifests[i]}});
    }
    choices.push_back({{"name", s.choice.name()},
                       {"method", s.choice.method},
                       {"ratio", s.choice.ratio},
                       {"length", s.choice.length},
                       {"epochs", s.epochs},
                       {"steps", s.steps},
                       {"spearman", num(s.spearman_mean)},
                       {"spearman_low", num(s.spearman_low)},
                       {"spearman_high", num(s.spearman_high)},
                       {"kendall", num(s.kendall_mean)},
                       {"agreement", num(s.agreement_mean)},
                       {"defined", s.defined},
                       {"cost_per_trial", s.cost_per_trial},
                       {"fixed_cost", s.fixed_cost},
                       {"search_cost", s.search_cost},
                       {"meets_target", s.meets_target},
                       {"seeds", per_seed}});
  }
  json cands = json::array();
  for (std::size_t i = 0; i < candidate_ids.size(); ++i) {
    cands.push_back({{"config_id", candidate_ids[i]},
                     {"macs", candidate_macs[i]},
                     {"full_accuracy", full_accuracy[i]},
                     {"probe", i == 0 || i + 1 == candidate_ids.size()}});
  }
  json j{{"schema", "dataproxy.calibration/1"},
         {"tool_version", kVersion},
         {"candidates", cands},
         {"choices", choices},
         {"recommended", recommended ? json(scores[*recommended].choice.name()) : json(nullptr)},
         {"best", scores.empty() ? json(nullptr) : json(scores[best].choice.name())},
         {"seeds", seeds},
         {"selection_seed", selection_seed},
         {"full_epochs", full_epochs},
         {"trained", trained},
         {"seconds", seconds},
         {"planned_cost_full_trials", planned_cost},
         {"budget_full_trials", budget},
         {"plan_notes", plan_notes}};
  if (recommended) {
    const auto& c = scores[*recommended].choice;
    j["choice"] = {{"method", c.method},
                   {"ratio", c.ratio},
                   {"length", c.length},
                   {"epochs", scores[*recommended].epochs},
                   {"steps", scores[*recommended].steps}};
  }
  return j;
}

CalibrationResult calibrate(const CalibrateOptions& o, Reporter& reporter) {
  const auto started = std::chrono::steady_clock::now();
  const std::vector<ProxyChoice> requested =
      o.choices.empty() ? default_proxy_choices() : o.choices;
  check_options(o, requested);
  const SearchSpace space = SearchSpace::load(o.space);
  const std::vector<Config> all = space.enumerate();
  DATAPROXY_CHECK(static_cast<int64_t>(all.size()) >= o.candidates, InvalidInput,
                  "the space '" << space.name() << "' has " << all.size()
                                << " configurations, fewer than the " << o.candidates
                                << " calibration candidates asked for; lower --candidates (at "
                                   "least "
                                << kMinCandidates << ") or calibrate a larger space");
  reporter.progress("load data", 0, 1);
  const DatasetSplits data = load_dataset(o.dataset, o.data_root, o.load_options);
  reporter.progress("load data", 1, 1);
  const InputShape input{data.train.channels(), data.train.height(), data.train.width()};
  const int64_t classes = data.train.num_classes;
  const int64_t space_epochs = o.train.epochs > 0 ? o.train.epochs : space.training().epochs;
  const int64_t batch_size =
      o.train.batch_size > 0 ? o.train.batch_size : space.training().batch_size;
  double mean_macs = 0;
  for (const Config& c : all) {
    mean_macs += static_cast<double>(model_cost(space, c, input, classes).macs);
  }
  mean_macs /= static_cast<double>(all.size());
  // The probes are the lightest and heaviest full-data candidates: unless told otherwise they
  // train as long as the other candidates, --epochs included.
  ProbeOptions probe_options = o.probes;
  if (probe_options.epochs == 0 && o.train.epochs > 0) probe_options.epochs = o.train.epochs;
  const int64_t probe_epochs =
      probe_options.epochs > 0 ? probe_options.epochs : space.training().epochs;
  const double probe_epoch_ratio =
      static_cast<double>(probe_epochs) / static_cast<double>(space_epochs);

  CalibrationResult result;
  Plan plan{requested, o.candidates, o.seeds, {}};
  plan = fit_budget(plan, o, space, input, classes, mean_macs, probe_epoch_ratio,
                    result.planned_cost, result.budget);
  result.plan_notes = plan.notes;
  result.seeds = plan.seeds;
  result.full_epochs = space_epochs;
  const std::vector<Candidate> cands = pick_candidates(space, input, classes, plan.candidates);

  // Every proxy shares one selection split, so every candidate ranks on one evaluation set.
  SelectionSplitOptions split = o.selection;
  if (split.seed < 0) split.seed = static_cast<int64_t>(o.seed);
  result.selection_seed = static_cast<uint64_t>(split.seed);
  const fs::path cache = o.cache_dir.empty() ? default_cache_dir() : o.cache_dir;
  ResultsStore runs(cache / "calibration" / "runs.jsonl");
  std::map<std::string, TrialRecord> done;
  for (auto& r : runs.load()) done[r.trial_id] = r;

  auto generate = [&](const ProxyChoice& c, uint64_t seed) {
    ProxyOptions p;
    p.space = o.space;
    p.dataset = o.dataset;
    p.data_root = o.data_root;
    p.load_options = o.load_options;
    p.ratio = c.ratio;
    p.method = make_selection_method(c.method, o.importance);
    p.seed = seed;
    p.selection = split;
    p.probes = probe_options;
    p.probes.count = 2;
    p.record_probes = true;  // the probes are the lightest and heaviest candidates
    p.cache_dir = cache;
    return generate_proxy(p, space, data, reporter);
  };

  auto train_one = [&](const Candidate& cand, const Dataset& train, const Dataset& test,
                       LengthPlan length, uint64_t seed, const json& deciding) {
    const std::string key = run_key(deciding);
    if (auto it = done.find(key); it != done.end()) return it->second;
    CandidateOptions copts;
    copts.train = o.train;
    copts.train.epochs = length.epochs;
    copts.proxy_steps = length.steps;
    copts.train.seed = seed;
    copts.train.evaluate_each_epoch = false;
    const bool full = deciding.at("kind") == "full";
    CandidateData sets;
    (full ? sets.full : sets.proxy) = {&train, &test, train.num_classes};
    TrialRecord rec = train_candidate(space, cand.config, sets, copts, reporter).record;
    rec.trial_id = key;
    rec.framework = "calibrate";
    rec.macs = cand.cost.macs;
    rec.params = cand.cost.params;
    rec.data.space = space.name();
    rec.data.space_hash = space.content_hash();
    if (!full) rec.manifest_key = deciding.at("manifest").get<std::string>();
    const double accuracy = *(full ? rec.full_accuracy : rec.proxy_accuracy);
    const double seconds = full ? rec.full_seconds : rec.proxy_seconds;
    runs.append(rec);
    done[key] = rec;
    ++result.trained;
    result.seconds += seconds;
    reporter.event({{"event", "calibration_run"},
                    {"kind", deciding.at("kind")},
                    {"config_id", cand.id},
                    {"accuracy", accuracy},
                    {"seconds", seconds}});
    return rec;
  };

  // The full-data side: the probes come from the proxy stage, the rest are trained here.
  const GenerateResult first = generate(plan.choices.front(), o.seed);
  const Manifest& m0 = first.manifest;
  result.seconds += first.probes_trained > 0 ? m0.stage_seconds.value("probes", 0.0) : 0.0;
  const Dataset ranking = ranking_test_set(m0, data.test);
  std::vector<double> full_seconds;
  for (std::size_t i = 0; i < cands.size(); ++i) {
    const Candidate& cand = cands[i];
    result.candidate_ids.push_back(cand.id);
    result.candidate_macs.push_back(cand.cost.macs);
    const bool probe = i == 0 || i + 1 == cands.size();
    if (probe) {
      const ProbeRecord& p = m0.probes[i == 0 ? 0 : m0.probes.size() - 1];
      DATAPROXY_CHECK(p.config_id == cand.id, RuntimeFailure,
                      "probe " << p.config_id << " is not calibration candidate " << cand.id
                               << " (a bug; please report it)");
      result.full_accuracy.push_back(p.test_accuracy);
      full_seconds.push_back(p.train_seconds);
      continue;
    }
    const json deciding{{"kind", "full"},
                        {"train_fingerprint", m0.train_fingerprint},
                        {"evaluation", m0.selection.evaluation_sha256},
                        {"space_hash", space.content_hash()},
                        {"config_id", cand.id},
                        {"epochs", space_epochs},
                        {"seed", o.seed},
                        {"device", o.train.device},
                        {"tool_version", kVersion}};
    const TrialRecord run =
        train_one(cand, data.train, ranking, {space_epochs, 0}, o.seed, deciding);
    result.full_accuracy.push_back(*run.full_accuracy);
    full_seconds.push_back(run.full_seconds);
  }

  // The proxy side: every choice, every seed, every candidate.
  const int64_t trials = o.expected_trials > 0 ? o.expected_trials : kDefaultSearchTrials;
  double probe_cost = 0;
  for (std::size_t i = 0; i < cands.size(); ++i) {
    if (i == 0 || i + 1 == cands.size()) {
      probe_cost += static_cast<double>(cands[i].cost.macs) / mean_macs * probe_epoch_ratio;
    }
  }
  const int64_t total_runs = static_cast<int64_t>(plan.choices.size()) * plan.seeds;
  int64_t run_index = 0;
  for (const ProxyChoice& choice : plan.choices) {
    ChoiceScore score;
    score.choice = choice;
    std::vector<std::vector<double>> proxy_acc;
    for (int64_t s = 0; s < plan.seeds; ++s) {
      reporter.progress("calibrate", run_index++, total_runs);
      const uint64_t seed = o.seed + static_cast<uint64_t>(s);
      const GenerateResult g = generate(choice, seed);
      score.manifests.push_back(g.path.string());
      const Dataset proxy_train = proxy_train_set(g.manifest, data.train);
      const Dataset proxy_test = proxy_test_set(g.manifest, data.test);
      const LengthPlan length =
          length_plan(space_epochs, choice.length, proxy_train.size(), batch_size);
      score.epochs = length.epochs;
      score.steps = length.steps;
      std::vector<double> acc;
      for (const Candidate& cand : cands) {
        json deciding{{"kind", "proxy"},
                      {"manifest", g.manifest.key},
                      {"config_id", cand.id},
                      {"epochs", length.epochs},
                      {"seed", seed},
                      {"device", o.train.device},
                      {"tool_version", kVersion}};
        if (length.steps > 0) deciding["steps"] = length.steps;
        acc.push_back(
            *train_one(cand, proxy_train, proxy_test, length, seed, deciding).proxy_accuracy);
      }
      const Correlation sp = spearman(acc, result.full_accuracy);
      const Correlation kt = kendall_tau_b(acc, result.full_accuracy);
      score.spearman.push_back(sp.defined ? sp.value : kNaN);
      score.kendall.push_back(kt.defined ? kt.value : kNaN);
      score.agreement.push_back(pairwise_agreement(acc, result.full_accuracy).agreement);
      proxy_acc.push_back(acc);
    }
    score.spearman_mean = nan_mean(score.spearman);
    score.kendall_mean = nan_mean(score.kendall);
    score.agreement_mean = nan_mean(score.agreement);
    score.defined = !std::isnan(score.spearman_mean);
    std::tie(score.spearman_low, score.spearman_high) =
        spearman_interval(proxy_acc, result.full_accuracy, o.confidence, o.seed);
    score.cost_per_trial = choice.ratio * choice.length;
    const auto& methods = selection_methods();
    const bool probes = std::find_if(methods.begin(), methods.end(), [&](const auto& m) {
                          return m.name == choice.method;
                        })->needs_probes;
    score.fixed_cost = probes ? probe_cost : 0;
    score.search_cost = score.fixed_cost + static_cast<double>(trials) * score.cost_per_trial;
    score.meets_target =
        score.defined && !std::isnan(score.spearman_low) && score.spearman_low >= o.target;
    result.scores.push_back(score);
  }
  reporter.progress("calibrate", total_runs, total_runs);

  for (std::size_t i = 0; i < result.scores.size(); ++i) {
    const auto& s = result.scores[i];
    if (s.meets_target &&
        (!result.recommended || s.search_cost < result.scores[*result.recommended].search_cost)) {
      result.recommended = i;
    }
    const auto& b = result.scores[result.best];
    if (s.defined && (!b.defined || s.spearman_mean > b.spearman_mean)) result.best = i;
  }

  if (!o.results.empty()) {
    // The full-data runs are the search's first spot checks: the same evaluation split.
    ResultsStore store(o.results);
    std::set<std::string> present;
    for (const auto& r : store.load()) present.insert(r.trial_id);
    for (std::size_t i = 0; i < cands.size(); ++i) {
      TrialRecord rec;
      rec.trial_id = "calibrate/" + cands[i].id;
      if (present.count(rec.trial_id)) continue;
      rec.framework = "calibrate";
      rec.config = cands[i].config;
      rec.config_id = cands[i].id;
      rec.full_accuracy = result.full_accuracy[i];
      rec.full_seconds = full_seconds[i];
      rec.spot_check = true;
      rec.macs = cands[i].cost.macs;
      rec.params = cands[i].cost.params;
      rec.manifest_key = m0.key;
      rec.finished = utc_now();
      rec.calibration = true;
      rec.probe = i == 0 || i + 1 == cands.size();
      rec.data.test_size = ranking.size();
      store.append(rec);
    }
  }
  if (!o.out.empty()) {
    fs::create_directories(o.out);
    json j = result.to_json();
    j["target"] = o.target;
    j["confidence"] = o.confidence;
    j["expected_trials"] = o.expected_trials;
    j["wall_seconds"] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    atomic_write(o.out / "calibration.json", j.dump(2) + "\n");
  }
  return result;
}

std::string format_calibration(const CalibrationResult& r, double target) {
  std::ostringstream os;
  os << std::fixed;
  os << "calibration candidates (full data, evaluation split):";
  for (std::size_t i = 0; i < r.candidate_ids.size(); ++i) {
    os << " " << r.candidate_ids[i] << " " << std::setprecision(3) << r.full_accuracy[i];
  }
  os << "\n\n"
     << std::left << std::setw(24) << "choice" << std::right << std::setw(10) << "spearman"
     << std::setw(20) << "interval" << std::setw(9) << "tau" << std::setw(11) << "agreement"
     << std::setw(11) << "cost/trial" << std::setw(13) << "search cost"
     << "\n";
  for (std::size_t i = 0; i < r.scores.size(); ++i) {
    const auto& s = r.scores[i];
    auto f = [](double v) {
      std::ostringstream x;
      x << std::fixed << std::setprecision(2);
      if (std::isnan(v)) {
        x << "n/a";
      } else {
        x << v;
      }
      return x.str();
    };
    std::string mark = r.recommended && *r.recommended == i ? "  <- recommended"
                       : s.meets_target                     ? "  meets target"
                                                            : "";
    os << std::left << std::setw(24) << s.choice.name() << std::right << std::setw(10)
       << f(s.spearman_mean) << std::setw(20)
       << ("[" + f(s.spearman_low) + ", " + f(s.spearman_high) + "]") << std::setw(9)
       << f(s.kendall_mean) << std::setw(11) << f(s.agreement_mean) << std::setw(11)
       << std::setprecision(3) << s.cost_per_trial << std::setw(13) << std::setprecision(1)
       << s.search_cost << mark << "\n";
  }
  if (std::any_of(r.scores.begin(), r.scores.end(),
                  [](const ChoiceScore& s) { return s.choice.ratio >= 1 && s.steps > 0; })) {
    os << "\nMETHOD:1:L is no subset: the full training data for L of the space's training, as "
          "optimizer steps (EcoNAS's reduced training).";
  }
  os << "\n"
     << r.candidate_ids.size() << " candidates x " << r.seeds
     << " seeds: a rank correlation over so few candidates is coarse; the interval resamples "
        "candidates and seeds, and its low end must reach the target ("
     << std::setprecision(2) << target << ").\n";
  if (!r.plan_notes.empty()) {
    os << "plan cut to the budget:";
    for (const auto& n : r.plan_notes) os << " " << n << ";";
    os << "\n";
  }
  os << "spent " << std::setprecision(1) << r.seconds << " s of training in " << r.trained
     << " trainings (" << std::setprecision(2) << r.planned_cost << " mean full-data trainings"
     << (r.budget > 0 ? ", budget " + std::to_string(r.budget) : std::string()) << ")\n";
  if (r.recommended) {
    const auto& s = r.scores[*r.recommended];
    os << "recommended: " << s.choice.name() << " (" << s.choice.method << ", "
       << percent(s.choice.ratio) << " of the data, " << s.choice.length << "x the space's "
       << (s.steps > 0 ? "training: " + std::to_string(s.steps) + " optimizer steps"
                       : std::string("epochs"))
       << "): the cheapest choice whose lower bound reaches " << std::setprecision(2) << target
       << "\n";
  } else if (!r.scores.empty()) {
    const auto& b = r.scores[r.best];
    os << "no choice reaches the target: its lower bound " << std::setprecision(2) << target
       << " is not met by any; the best found is " << b.choice.name() << " (Spearman "
       << (std::isnan(b.spearman_mean) ? std::string("n/a") : std::to_string(b.spearman_mean))
       << "). Trust a proxy search here only with spot checks, or try larger ratios or "
          "longer training.\n";
  }
  return os.str();
}

}  // namespace dataproxy
