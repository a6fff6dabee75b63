#include <cmath>
#include <sstream>

#include "dataproxy/error.h"
#include "dataproxy/proxy.h"

namespace dataproxy {

void CaseWeights::validate() const {
  const double w[4] = {c1, c2, c3, c4};
  for (int i = 0; i < 4; ++i) {
    DATAPROXY_CHECK(std::isfinite(w[i]) && w[i] > 0, InvalidInput,
                    "case weight c" << i + 1 << " = " << w[i]
                                    << " is not a positive number: every case needs a weight > 0 "
                                       "(a zero drops those samples and training may not "
                                       "converge); use e.g. --weights 2,1,6,1");
  }
}

CaseWeights CaseWeights::parse(const std::string& text) {
  std::vector<double> values;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      std::size_t used = 0;
      values.push_back(std::stod(item, &used));
      DATAPROXY_CHECK(used == item.size(), InvalidInput, "");
    } catch (const std::exception&) {
      throw InvalidInput("case weights '" + text + "': '" + item +
                         "' is not a number; give four numbers c1,c2,c3,c4 such as 2,1,6,1");
    }
  }
  DATAPROXY_CHECK(values.size() == 4, InvalidInput,
                  "case weights '" << text << "' has " << values.size()
                                   << " values; give four numbers c1,c2,c3,c4 such as 2,1,6,1");
  CaseWeights w{values[0], values[1], values[2], values[3]};
  w.validate();
  return w;
}

json CaseWeights::to_json() const { return json{{"c1", c1}, {"c2", c2}, {"c3", c3}, {"c4", c4}}; }

Importance compute_importance(const torch::Tensor& correct, const std::vector<double>& accuracies,
                              const CaseWeights& weights) {
  weights.validate();
  DATAPROXY_CHECK(correct.dim() == 2 && correct.size(0) >= 2, InvalidInput,
                  "probe correctness must be [probes >= 2, test samples], got " << correct.sizes());
  const int64_t probes = correct.size(0);
  DATAPROXY_CHECK(static_cast<int64_t>(accuracies.size()) == probes, InvalidInput,
                  "got " << accuracies.size() << " probe accuracies for " << probes << " probes");
  torch::Tensor c = correct.to(torch::kCPU, torch::kBool);
  const int64_t n = c.size(1);
  torch::Tensor w = torch::tensor({weights.c1, weights.c2, weights.c3, weights.c4},
                                  torch::dtype(torch::kFloat64));
  Importance out;
  out.values = torch::zeros({n}, torch::kFloat64);
  int64_t pairs = 0;
  for (int64_t a = 0; a < probes; ++a) {
    for (int64_t b = a + 1; b < probes; ++b) {
      // A tie in accuracy goes to the heavier probe (later in the list).
      const int64_t hi = accuracies[a] > accuracies[b] ? a : b;
      const int64_t lo = hi == a ? b : a;
      torch::Tensor hr = c[hi];
      torch::Tensor lr = c[lo];
      torch::Tensor cases = torch::ones({n}, torch::kInt64);
      cases.masked_fill_(hr.logical_and(lr), 0);
      cases.masked_fill_(hr.logical_and(lr.logical_not()), 2);
      cases.masked_fill_(hr.logical_not().logical_and(lr), 3);
      out.values += w.index_select(0, cases);
      torch::Tensor counts = torch::bincount(cases, {}, 4);
      json pc{{"a", a}, {"b", b}, {"more_accurate", hi}};
      for (int i = 0; i < 4; ++i) pc["c" + std::to_string(i + 1)] = counts[i].item<int64_t>();
      out.pair_case_counts.push_back(pc);
      if (a == 0 && b == probes - 1) {
        out.cases = cases;
        for (int i = 0; i < 4; ++i) {
          out.case_counts["c" + std::to_string(i + 1)] = counts[i].item<int64_t>();
        }
      }
      ++pairs;
    }
  }
  out.values /= static_cast<double>(pairs);
  return out;
}

}  // namespace dataproxy
