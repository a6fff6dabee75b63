#include "dataproxy/report.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

#include "dataproxy/clock.h"
#include "dataproxy/error.h"
#include "dataproxy/files.h"
#include "dataproxy/manifest.h"

namespace dataproxy {
namespace {

// Running mean of a value seen in several records of one configuration.
struct Mean {
  double sum = 0;
  int64_t n = 0;
  void add(double v) {
    sum += v;
    ++n;
  }
  std::optional<double> get() const {
    return n > 0 ? std::optional<double>(sum / static_cast<double>(n)) : std::nullopt;
  }
};

struct Accumulator {
  Candidate c;
  Mean proxy_acc, full_acc, proxy_s, full_s;
  std::set<std::string> frameworks;
  bool completed = false;
};

double median(std::vector<double> v) { return percentile(std::move(v), 50); }

std::string fixed(double v, int precision) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(precision) << v;
  return os.str();
}

json opt(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

// 1 = best; equal values share the better rank.
std::map<std::string, int64_t> competition_ranks(
    const std::vector<std::pair<double, std::string>>& values) {
  auto sorted = values;
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::map<std::string, int64_t> ranks;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    bool tie = i > 0 && sorted[i].first == sorted[i - 1].first;
    ranks[sorted[i].second] = tie ? ranks[sorted[i - 1].second] : static_cast<int64_t>(i + 1);
  }
  return ranks;
}

json verdict(const RankingSummary& s, const ReportOptions& options) {
  json v;
  std::vector<std::string> advice;
  const int64_t n = s.n;
  const std::string more =
      "Train more candidates on the full data (spot checks), spread over "
      "the range of proxy accuracies, and regenerate this report.";
  if (n == 0) {
    v["level"] = "none";
    v["headline"] =
        "No ranking evidence yet: no candidate has both a proxy and a full-data accuracy.";
    advice.push_back("Run at least " + std::to_string(options.min_spot_checks) +
                     " spot checks (candidates also trained on the full data). " + more);
  } else if (!s.spearman.defined) {
    v["level"] = "none";
    v["headline"] = "Only " + std::to_string(n) + " spot check" + (n == 1 ? "" : "s") +
                    " with both accuracies; the rank correlation is undefined (" + s.spearman.note +
                    ").";
    advice.push_back(more);
  } else {
    double rho = s.spearman.value;
    std::string rho_text = "Spearman rho = " + fixed(rho, 3);
    if (s.spearman_ci.defined) {
      rho_text += " (" + fixed(s.spearman_ci.confidence * 100, 0) + "% CI " +
                  fixed(s.spearman_ci.low, 2) + " to " + fixed(s.spearman_ci.high, 2) + ")";
    }
    rho_text += " over " + std::to_string(n) + " spot checks";
    if (n < options.min_spot_checks) {
      v["level"] = "thin";
      v["headline"] = "Too few spot checks to trust yet: " + rho_text + ".";
      advice.push_back("With fewer than " + std::to_string(options.min_spot_checks) +
                       " spot checks a correlation can look high or low by chance. Run at least " +
                       std::to_string(options.min_spot_checks - n) + " more. " + more);
    } else if (rho >= 0.9) {
      v["level"] = "good";
      v["headline"] = "The proxy preserves the ranking well: " + rho_text + ".";
    } else if (rho >= 0.7) {
      v["level"] = "moderate";
      v["headline"] = "The proxy preserves the ranking moderately: " + rho_text + ".";
      advice.push_back(
          "Near the top the order may differ; spot-check the proxy's best few "
          "candidates before choosing.");
    } else if (rho >= 0.4) {
      v["level"] = "weak";
      v["headline"] = "The proxy preserves the ranking only weakly: " + rho_text + ".";
      advice.push_back(
          "Consider a larger proxy ratio, or compare with a random proxy of the "
          "same size; spot-check the proxy's best candidates.");
    } else {
      v["level"] = "poor";
      v["headline"] = "The proxy does not preserve the ranking: " + rho_text + ".";
      advice.push_back(
          "Do not trust the proxy's pick: use a larger ratio or another selection "
          "method, and check the probes' accuracies in the manifest.");
    }
    const Interval& ci = s.spearman_ci;
    if (ci.defined && n >= options.min_spot_checks && ci.high - ci.low > 0.3) {
      advice.push_back("The interval is wide (rho could be as low as " + fixed(ci.low, 2) +
                       "); more spot checks will narrow it.");
    }
  }
  if (s.regret.defined && n >= 2) {
    v["regret_text"] =
        s.regret.value == 0
            ? "The proxy's first choice is also the best by full-data accuracy (regret 0)."
            : "Trusting the proxy's first choice costs " + fixed(s.regret.value * 100, 2) +
                  " points of full-data accuracy (regret) among the spot-checked candidates.";
  }
  v["advice"] = advice;
  return v;
}

// What generating the proxy cost, from its manifest: probe training and the selection stages.
struct GenerationCost {
  double probes = 0;
  double selection = 0;
  bool probes_from_manifest = false;  ///< probe records in the store are then not counted again
  json stages = json::object();
  std::string note;
};

GenerationCost generation_cost(const Manifest* manifest) {
  GenerationCost g;
  if (!manifest) return g;
  if (manifest->stage_seconds.is_object()) {
    for (const auto& [key, value] : manifest->stage_seconds.items()) {
      if (!value.is_number() || key == "total") continue;
      g.stages[key] = value;
      if (key == "probes") {
        g.probes = value.get<double>();
        g.probes_from_manifest = true;
      } else {
        g.selection += value.get<double>();
      }
    }
  }
  // Probes reused from the cache show 0 s here; they still cost their original training.
  if (g.probes <= 0) {
    double trained = 0;
    for (const auto& p : manifest->probes) trained += p.train_seconds;
    g.probes_from_manifest = g.probes_from_manifest || !manifest->probes.empty();
    if (trained > 0) {
      if (g.probes_from_manifest && g.stages.contains("probes")) {
        g.note = "the probes were reused from the cache; counted at their original training time";
      }
      g.probes = trained;
    }
  }
  return g;
}

// Training seconds of the search itself, from the records.
struct SearchCost {
  double probes = 0;  ///< probe records, when the manifest did not give the probes' cost
  double proxy_trials = 0;
  double spot_checks = 0;
};

SearchCost search_cost(const std::vector<TrialRecord>& records, bool probes_from_manifest) {
  SearchCost s;
  for (const auto& r : records) {
    if (r.framework == "probe") {
      if (!probes_from_manifest) s.probes += r.full_seconds;
      continue;
    }
    s.proxy_trials += r.proxy_seconds;
    s.spot_checks += r.full_seconds;
  }
  return s;
}

// How the full-data training time of a candidate that was not spot-checked is estimated, in
// order of preference: the spot checks' full/proxy time ratio, their time per MAC, the data
// ratio of the proxy.
struct FullTimeModel {
  std::vector<double> time_ratios;
  std::vector<double> seconds_per_mac;
  std::optional<double> time_ratio;
  std::optional<double> per_mac;
  double data_ratio = 0;
};

FullTimeModel full_time_model(const std::vector<Candidate>& candidates, const Manifest* manifest) {
  FullTimeModel f;
  for (const auto& c : candidates) {
    if (!c.full_seconds || *c.full_seconds <= 0) continue;
    if (c.searched && c.proxy_seconds > 0) {
      f.time_ratios.push_back(*c.full_seconds / c.proxy_seconds);
    }
    if (c.macs > 0) f.seconds_per_mac.push_back(*c.full_seconds / static_cast<double>(c.macs));
  }
  f.data_ratio = manifest ? manifest->ratio : 0;
  if (!f.time_ratios.empty()) f.time_ratio = median(f.time_ratios);
  if (!f.seconds_per_mac.empty()) f.per_mac = median(f.seconds_per_mac);
  return f;
}

// A candidate's full-data seconds and how they were found ("measured", "time_ratio", "macs",
// "data_ratio"); nullopt when nothing allows an estimate.
std::optional<std::pair<double, std::string>> full_seconds_of(const Candidate& c,
                                                              const FullTimeModel& f) {
  if (c.full_seconds && *c.full_seconds > 0) return std::make_pair(*c.full_seconds, "measured");
  if (f.time_ratio && c.proxy_seconds > 0) {
    return std::make_pair(c.proxy_seconds * *f.time_ratio, "time_ratio");
  }
  if (f.per_mac && c.macs > 0) {
    return std::make_pair(static_cast<double>(c.macs) * *f.per_mac, "macs");
  }
  if (f.data_ratio > 0 && f.data_ratio <= 1 && c.proxy_seconds > 0) {
    return std::make_pair(c.proxy_seconds / f.data_ratio, "data_ratio");
  }
  return std::nullopt;
}

// The search's cost had every searched candidate been trained on the full data.
struct FullDataCost {
  std::map<std::string, int64_t> methods;  ///< candidates per estimate method
  double total = 0;
  int64_t searched = 0;
  int64_t unknown = 0;  ///< searched candidates without an estimate
};

// Also fills each candidate row's "full_seconds_estimate" and "full_cost_method".
FullDataCost full_data_cost(const std::vector<Candidate>& candidates, const FullTimeModel& f,
                            json& candidate_rows) {
  FullDataCost out;
  for (const Candidate& c : candidates) {
    if (!c.searched) continue;
    ++out.searched;
    const auto est = full_seconds_of(c, f);
    for (auto& row : candidate_rows) {
      if (row["id"] == c.id) {
        row["full_seconds_estimate"] = est ? json(est->first) : json(nullptr);
        row["full_cost_method"] = est ? json(est->second) : json(nullptr);
      }
    }
    if (!est) {
      ++out.unknown;
      continue;
    }
    out.total += est->first;
    out.methods[est->second] += 1;
  }
  return out;
}

// One sentence per estimate method, for the page.
std::vector<std::string> estimate_text(const FullDataCost& cost, const FullTimeModel& f) {
  std::vector<std::string> how;
  auto count = [&](const char* method) {
    auto it = cost.methods.find(method);
    return it == cost.methods.end() ? int64_t{0} : it->second;
  };
  if (count("measured"))
    how.push_back(std::to_string(count("measured")) + " measured (spot checks)");
  if (count("time_ratio")) {
    how.push_back(std::to_string(count("time_ratio")) +
                  " estimated from the full/proxy time ratio of the spot checks (median " +
                  fixed(*f.time_ratio, 1) + "x over " + std::to_string(f.time_ratios.size()) + ")");
  }
  if (count("macs")) {
    how.push_back(std::to_string(count("macs")) +
                  " estimated from MACs, scaled by the measured full-data time per MAC (median "
                  "over " +
                  std::to_string(f.seconds_per_mac.size()) + " spot checks and probes)");
  }
  if (count("data_ratio")) {
    how.push_back(std::to_string(count("data_ratio")) + " estimated as proxy time / proxy ratio " +
                  fixed(f.data_ratio, 3) + " (no measured full-data time to scale from)");
  }
  if (cost.unknown > 0) {
    how.push_back(std::to_string(cost.unknown) +
                  " without an estimate (no proxy time, MACs or measured full-data time); "
                  "left out of the full-data total");
  }
  return how;
}

json cost_ledger(const std::vector<TrialRecord>& records, const std::vector<Candidate>& candidates,
                 const Manifest* manifest, json& candidate_rows) {
  const GenerationCost gen = generation_cost(manifest);
  const SearchCost search = search_cost(records, gen.probes_from_manifest);
  const double probes = gen.probes + search.probes;
  const double spent = probes + gen.selection + search.proxy_trials + search.spot_checks;
  const FullTimeModel model = full_time_model(candidates, manifest);
  const FullDataCost full = full_data_cost(candidates, model, candidate_rows);
  const int64_t estimated = full.searched - full.unknown;

  json cost;
  if (!gen.note.empty()) cost["probes_note"] = gen.note;
  cost["probes_seconds"] = probes;
  cost["selection_seconds"] = gen.selection;
  cost["stage_seconds"] = gen.stages;
  cost["proxy_trials_seconds"] = search.proxy_trials;
  cost["spot_checks_seconds"] = search.spot_checks;
  cost["spent_seconds"] = spent;
  cost["searched_candidates"] = full.searched;
  cost["estimated_candidates"] = estimated;
  cost["full_data_seconds"] = estimated > 0 ? json(full.total) : json(nullptr);
  cost["estimate_methods"] = full.methods;
  cost["estimate_text"] = estimate_text(full, model);
  cost["time_ratio"] = opt(model.time_ratio);
  cost["speedup"] = estimated > 0 && spent > 0 ? json(full.total / spent) : json(nullptr);
  const double search_only = search.proxy_trials + search.spot_checks;
  cost["speedup_without_generation"] =
      estimated > 0 && search_only > 0 ? json(full.total / search_only) : json(nullptr);
  return cost;
}

json manifest_summary(const Manifest* manifest, const std::string& path) {
  if (!manifest) return nullptr;
  const Manifest& mf = *manifest;
  json m;
  m["path"] = path;
  m["key"] = mf.key;
  m["dataset"] = mf.dataset;
  m["method"] = mf.method;
  m["space_name"] = mf.space_name;
  m["created"] = mf.created;
  m["tool_version"] = mf.tool_version;
  m["ratio"] = mf.ratio;
  m["selection_split"] = mf.selection.split;
  m["evaluation_size"] = static_cast<double>(mf.selection.evaluation.size());
  m["selection_size"] = static_cast<double>(mf.selection.selection.size());
  m["probes"] = json::array();
  for (const auto& p : mf.probes) {
    m["probes"].push_back({{"config_id", p.config_id},
                           {"macs", static_cast<double>(p.macs)},
                           {"test_accuracy", p.test_accuracy},
                           {"train_seconds", p.train_seconds},
                           {"epoch_seconds", p.epoch_seconds},
                           {"epochs", static_cast<double>(p.epochs)}});
  }
  return m;
}

}  // namespace

std::vector<Candidate> merge_candidates(const std::vector<TrialRecord>& records,
                                        const Manifest* manifest) {
  std::vector<Accumulator> acc;
  std::map<std::string, std::size_t> index;
  auto slot = [&](const std::string& id) -> Accumulator& {
    auto [it, inserted] = index.emplace(id, acc.size());
    if (inserted) {
      acc.emplace_back();
      acc.back().c.id = id;
    }
    return acc[it->second];
  };
  std::set<std::string> recorded_probes;
  // Accuracies as pair_candidates() counts them: proxy runs of this manifest; probes only
  // where no full-data run was recorded.
  const std::string key = manifest ? manifest->key : "";
  for (std::size_t i = 0; i < records.size(); ++i) {
    const TrialRecord& r = records[i];
    std::string id = !r.config_id.empty()  ? r.config_id
                     : !r.trial_id.empty() ? "trial " + r.trial_id
                                           : "record " + std::to_string(i + 1);
    Accumulator& a = slot(id);
    if (a.c.config.empty() && !r.config.is_null()) a.c.config = r.config;
    a.frameworks.insert(r.framework);
    a.c.records += 1;
    if (r.macs > 0) a.c.macs = r.macs;
    if (r.params > 0) a.c.params = r.params;
    bool complete = r.status == "complete";
    if (complete) a.completed = true;
    if (!a.completed) a.c.status = r.status;
    if (r.framework == "probe") {
      a.c.probe = true;
      recorded_probes.insert(id);
    } else if (r.proxy_accuracy || r.proxy_seconds > 0) {
      a.c.searched = true;
    }
    if (complete && r.proxy_accuracy && (key.empty() || r.manifest_key == key)) {
      a.proxy_acc.add(*r.proxy_accuracy);
    }
    if (r.proxy_seconds > 0) a.proxy_s.add(r.proxy_seconds);
    if (complete && r.full_accuracy) a.full_acc.add(*r.full_accuracy);
    if (r.full_seconds > 0) a.full_s.add(r.full_seconds);
  }
  if (manifest) {
    for (const auto& p : manifest->probes) {
      if (p.config_id.empty() || recorded_probes.count(p.config_id)) continue;
      Accumulator& a = slot(p.config_id);
      a.c.probe = true;
      a.frameworks.insert("probe");
      if (a.c.config.empty() && !p.config.is_null()) a.c.config = p.config;
      if (a.c.macs == 0) a.c.macs = p.macs;
      if (a.c.params == 0) a.c.params = p.params;
      if (a.full_acc.n == 0) a.full_acc.add(p.test_accuracy);
      a.completed = true;
      if (p.train_seconds > 0) a.full_s.add(p.train_seconds);
    }
  }
  std::vector<Candidate> out;
  out.reserve(acc.size());
  for (auto& a : acc) {
    Candidate c = std::move(a.c);
    c.frameworks.assign(a.frameworks.begin(), a.frameworks.end());
    c.proxy_accuracy = a.proxy_acc.get();
    c.full_accuracy = a.full_acc.get();
    c.proxy_seconds = a.proxy_s.get().value_or(0);
    c.full_seconds = a.full_s.get();
    c.spot_check = c.full_accuracy.has_value();
    if (a.completed) c.status = "complete";
    out.push_back(std::move(c));
  }
  return out;
}

namespace {

// The three things a user needs at the end of a search, in words: what it cost against the
// full data, how far to trust the proxy's ranking, and which candidate to take.
json bottom_line(const std::vector<Candidate>& candidates, const json& cost, const json& verdict) {
  json out;
  std::vector<std::string> lines;
  const double spent = cost.value("spent_seconds", 0.0);
  if (cost["full_data_seconds"].is_number() && spent > 0) {
    const double full = cost["full_data_seconds"].get<double>();
    std::string text = "Time: the search took " + fixed(spent, 0) +
                       " s of training on the proxy (probes, selection and spot checks "
                       "included); the same " +
                       std::to_string(cost.value("estimated_candidates", 0)) +
                       " candidates on the full data: about " + fixed(full, 0) + " s, so " +
                       fixed(full / spent, 1) +
                       "x less. Training seconds only: each trial's start-up and evaluation "
                       "come on top on both sides.";
    out["time"] = text;
    lines.push_back(text);
  }
  std::string agreement = "Agreement: " + verdict.value("headline", std::string());
  out["agreement"] = agreement;
  lines.push_back(agreement);
  const Candidate* by_proxy = nullptr;
  const Candidate* by_full = nullptr;
  for (const auto& c : candidates) {
    if (c.proxy_accuracy && (!by_proxy || *c.proxy_accuracy > *by_proxy->proxy_accuracy)) {
      by_proxy = &c;
    }
    if (c.full_accuracy && (!by_full || *c.full_accuracy > *by_full->full_accuracy)) {
      by_full = &c;
    }
  }
  std::string pick;
  if (by_proxy) {
    pick = "Pick: " + by_proxy->id + ", the proxy's best (proxy accuracy " +
           fixed(*by_proxy->proxy_accuracy * 100, 1) + "%";
    if (by_proxy->full_accuracy) {
      pick += ", full-data accuracy " + fixed(*by_proxy->full_accuracy * 100, 1) + "%";
    }
    pick += ")";
    if (by_full && by_full != by_proxy &&
        (!by_proxy->full_accuracy || *by_full->full_accuracy > *by_proxy->full_accuracy)) {
      pick += "; but " + by_full->id + " measured " + fixed(*by_full->full_accuracy * 100, 1) +
              "% on the full data" +
              (by_proxy->full_accuracy
                   ? ", more than the proxy's pick: take " + by_full->id
                   : ": train " + by_proxy->id + " on the full data before choosing between them");
    }
    pick += ".";
    out["pick"] = by_proxy->id;
    lines.push_back(pick);
  }
  out["pick_text"] = pick;
  out["lines"] = lines;
  return out;
}

}  // namespace

json build_report(const std::vector<TrialRecord>& records, const Manifest* manifest,
                  const ReportOptions& options, const ReportSources& sources) {
  DATAPROXY_CHECK(options.min_spot_checks >= 1, InvalidInput,
                  "min_spot_checks must be at least 1, got " << options.min_spot_checks);
  DATAPROXY_CHECK(options.max_heatmap >= 1, InvalidInput,
                  "max_heatmap must be at least 1, got " << options.max_heatmap);
  std::vector<Candidate> candidates = merge_candidates(records, manifest);

  // Table order: by proxy accuracy, best first; candidates without one at the end.
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& a, const Candidate& b) {
                     if (a.proxy_accuracy.has_value() != b.proxy_accuracy.has_value()) {
                       return a.proxy_accuracy.has_value();
                     }
                     if (a.proxy_accuracy && *a.proxy_accuracy != *b.proxy_accuracy) {
                       return *a.proxy_accuracy > *b.proxy_accuracy;
                     }
                     return a.full_accuracy.value_or(-1) > b.full_accuracy.value_or(-1);
                   });

  std::vector<std::pair<double, std::string>> by_proxy, by_full;
  for (const auto& c : candidates) {
    if (c.proxy_accuracy) by_proxy.emplace_back(*c.proxy_accuracy, c.id);
    if (c.full_accuracy) by_full.emplace_back(*c.full_accuracy, c.id);
  }
  // The ranked points are the trial runner's too (pair_candidates), in the table's order.
  std::map<std::string, CandidatePair> pairs;
  for (CandidatePair& p :
       pair_candidates(records, manifest ? pairing_of(*manifest) : PairingManifest{})) {
    pairs.emplace(p.config_id, std::move(p));
  }
  std::vector<double> proxy, full;
  std::vector<std::string> ranked_ids;
  for (const auto& c : candidates) {
    if (auto it = pairs.find(c.id); it != pairs.end()) {
      proxy.push_back(it->second.proxy);
      full.push_back(it->second.full);
      ranked_ids.push_back(c.id);
    }
  }
  auto proxy_rank = competition_ranks(by_proxy);
  auto full_rank = competition_ranks(by_full);

  json rows = json::array();
  for (const auto& c : candidates) {
    json row;
    row["id"] = c.id;
    row["config"] = c.config;
    row["frameworks"] = c.frameworks;
    row["proxy_accuracy"] = opt(c.proxy_accuracy);
    row["full_accuracy"] = opt(c.full_accuracy);
    row["proxy_rank"] = proxy_rank.count(c.id) ? json(proxy_rank[c.id]) : json(nullptr);
    row["full_rank"] = full_rank.count(c.id) ? json(full_rank[c.id]) : json(nullptr);
    row["proxy_seconds"] = c.proxy_seconds;
    row["full_seconds"] = opt(c.full_seconds);
    row["full_seconds_estimate"] = nullptr;
    row["full_cost_method"] = nullptr;
    row["macs"] = c.macs;
    row["params"] = c.params;
    row["records"] = c.records;
    row["spot_check"] = c.spot_check;
    row["probe"] = c.probe;
    row["searched"] = c.searched;
    row["ranked"] = pairs.count(c.id) > 0;
    row["status"] = c.status;
    rows.push_back(std::move(row));
  }

  RankingOptions ropt;
  ropt.bootstrap = options.bootstrap;
  ropt.top_k = options.top_k;
  RankingSummary summary = summarize_ranking(proxy, full, ropt);

  json ranking = summary.to_json();
  ranking["ids"] = ranked_ids;
  ranking["proxy"] = proxy;
  ranking["full"] = full;
  ranking["proxy_pick"] = json::array();
  for (int64_t i : summary.regret.picks) ranking["proxy_pick"].push_back(ranked_ids[i]);
  ranking["true_best"] =
      summary.regret.best >= 0 ? json(ranked_ids[summary.regret.best]) : json(nullptr);

  // Heatmap: the best candidates by full accuracy, in that order (Figure 2 of the paper).
  std::vector<std::size_t> order(ranked_ids.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return full[a] > full[b]; });
  if (order.size() > static_cast<std::size_t>(options.max_heatmap)) {
    order.resize(static_cast<std::size_t>(options.max_heatmap));
  }
  json heat;
  heat["ids"] = json::array();
  heat["matrix"] = json::array();
  for (std::size_t a : order) {
    heat["ids"].push_back(ranked_ids[a]);
    json line = json::array();
    for (std::size_t b : order) line.push_back(summary.pairs.at(a, b));
    heat["matrix"].push_back(std::move(line));
  }
  heat["shown"] = order.size();
  heat["total"] = ranked_ids.size();

  std::map<std::string, int64_t> statuses, frameworks;
  std::set<std::string> keys;
  for (const auto& r : records) {
    statuses[r.status] += 1;
    frameworks[r.framework.empty() ? "unknown" : r.framework] += 1;
    if (!r.manifest_key.empty()) keys.insert(r.manifest_key);
  }
  json warnings = json::array();
  const std::string manifest_key = manifest ? manifest->key : "";
  if (keys.size() > 1) {
    warnings.push_back("The records come from " + std::to_string(keys.size()) +
                       " different proxies (manifest keys); their proxy accuracies may not be "
                       "comparable.");
  }
  if (!manifest_key.empty() && !keys.empty() && !keys.count(manifest_key)) {
    warnings.push_back("No record was trained on the manifest given (key " + manifest_key +
                       "); its probes and costs may belong to another proxy.");
  }
  for (const auto& c : candidates) {
    if (c.searched && !c.proxy_accuracy) {
      if (c.full_accuracy) {
        warnings.push_back(
            "Candidate " + c.id +
            (c.probe ? " is a probe: it has a full-data accuracy" : " has a full-data accuracy") +
            " but no completed proxy run (pruned, stopped or failed); it is "
            "listed but not ranked.");
      } else {
        warnings.push_back("Candidate " + c.id + " has no completed proxy run (status " + c.status +
                           "); it is listed but not ranked.");
      }
    }
  }

  json report;
  report["schema"] = "dataproxy.report/1";
  report["title"] = options.title;
  report["generated"] = utc_now();
  report["sources"] = {{"results", sources.results}, {"manifest", sources.manifest}};
  report["records"] = records.size();
  report["record_status"] = statuses;
  report["record_frameworks"] = frameworks;
  report["options"] = {{"bootstrap_resamples", options.bootstrap.resamples},
                       {"confidence", options.bootstrap.confidence},
                       {"seed", options.bootstrap.seed},
                       {"top_k", options.top_k},
                       {"min_spot_checks", options.min_spot_checks},
                       {"refresh_seconds", options.refresh_seconds}};
  report["manifest"] = manifest_summary(manifest, sources.manifest);
  report["cost"] = cost_ledger(records, candidates, manifest, rows);
  report["candidates"] = std::move(rows);
  report["ranking"] = std::move(ranking);
  report["heatmap"] = std::move(heat);
  report["verdict"] = verdict(summary, options);
  report["summary"] = bottom_line(candidates, report["cost"], report["verdict"]);
  report["warnings"] = std::move(warnings);
  return report;
}

json calibration_summary(const json& c, const std::string& origin) {
  DATAPROXY_CHECK(c.is_object() && c.value("schema", "") == "dataproxy.calibration/1" &&
                      c.contains("choices") && c["choices"].is_array(),
                  DataError,
                  origin << " is not a calibration.json of this dataproxy (no schema "
                            "dataproxy.calibration/1); run `dataproxy calibrate` again");
  json out{{"recommended", c.value("recommended", json(nullptr))},
           {"best", c.value("best", json(nullptr))},
           {"target", c.value("target", json(nullptr))},
           {"confidence", c.value("confidence", json(nullptr))},
           {"seeds", c.value("seeds", json(nullptr))},
           {"trained", c.value("trained", json(nullptr))},
           {"seconds", c.value("seconds", json(nullptr))},
           {"plan_notes", c.value("plan_notes", json::array())},
           {"candidates", c.value("candidates", json::array())},
           {"choices", json::array()}};
  for (const auto& ch : c["choices"]) {
    DATAPROXY_CHECK(ch.is_object() && ch.contains("name"), DataError,
                    origin << ": a choice without a name");
    json row;
    for (const char* key : {"name", "method", "ratio", "length", "epochs", "spearman",
                            "spearman_low", "spearman_high", "kendall", "agreement",
                            "cost_per_trial", "search_cost", "meets_target"}) {
      row[key] = ch.value(key, json(nullptr));
    }
    out["choices"].push_back(row);
  }
  return out;
}

json write_report(const fs::path& results, const fs::path& manifest, const fs::path& out_dir,
                  const ReportOptions& options) {
  ResultsStore store(results);
  std::error_code ec;
  DATAPROXY_CHECK(fs::exists(store.file(), ec), InvalidInput,
                  "no results store at " << store.file().string()
                                         << ": no trial has recorded a result there yet (check "
                                            "--results: an experiment folder or its "
                                            "results.jsonl)");
  std::vector<TrialRecord> records = store.load();
  DATAPROXY_CHECK(!records.empty(), InvalidInput,
                  "the results store " << store.file().string()
                                       << " has no complete records yet; run some trials first "
                                          "(or wait for the first one to finish)");
  fs::path manifest_path = manifest;
  if (manifest_path.empty()) {
    std::set<std::string> keys;
    for (const auto& r : records) {
      if (!r.manifest_key.empty()) keys.insert(r.manifest_key);
    }
    fs::path beside = store.file().parent_path() / kManifestFileName;
    if (fs::exists(beside, ec)) {
      manifest_path = beside;
    } else if (keys.size() == 1) {
      // Where `dataproxy generate` caches the proxy every record was trained on.
      fs::path cached = proxy_manifest_file(default_cache_dir(), *keys.begin());
      if (fs::exists(cached, ec)) manifest_path = cached;
    }
  }
  std::optional<Manifest> loaded;
  if (!manifest_path.empty()) loaded = load_manifest(manifest_path);
  // `dataproxy-optuna --ratio auto` (and the NNI tuner) write it next to the results store.
  const fs::path calibration = store.file().parent_path() / "calibration" / "calibration.json";
  ReportSources sources{store.file().string(), manifest_path.string(),
                        fs::exists(calibration, ec) ? calibration.string() : std::string()};
  json report = build_report(records, loaded ? &*loaded : nullptr, options, sources);
  if (!sources.calibration.empty()) {
    json cal = json::parse(read_file(calibration), nullptr, false);
    report["calibration"] = calibration_summary(cal, calibration.string());
    report["sources"]["calibration"] = sources.calibration;
  }
  fs::path out = out_dir.empty() ? store.file().parent_path() : out_dir;
  if (out.empty()) out = ".";
  fs::create_directories(out, ec);
  atomic_write(out / "report.json", report.dump(2) + "\n");
  atomic_write(out / "report.html", render_report_html(report));
  return report;
}

}  // namespace dataproxy
