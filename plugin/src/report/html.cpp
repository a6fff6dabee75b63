// The report page: one self-contained HTML file. Plots are inline SVG written here; a small
// inline script adds sorting and hover links, and records any script error on <html> so tests
// (and readers) can see it. Nothing is fetched from the network.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

#include "dataproxy/report.h"

namespace dataproxy {
namespace {

std::string esc(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string fixed(double v, int precision) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(precision) << v;
  return os.str();
}

std::string pct(const json& v, int precision = 2) {
  return v.is_number() ? fixed(v.get<double>() * 100, precision) + "%" : "&ndash;";
}

std::string duration(double s) {
  if (!std::isfinite(s) || s <= 0) return "0 s";
  if (s < 60) return fixed(s, s < 10 ? 2 : 1) + " s";
  char buf[64];
  auto total = static_cast<int64_t>(std::llround(s));
  if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lld min %02lld s", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lld h %02lld min", static_cast<long long>(total / 3600),
                  static_cast<long long>(total % 3600 / 60));
  }
  return buf;
}

std::string big_number(double v) {
  if (v >= 1e9) return fixed(v / 1e9, 2) + " G";
  if (v >= 1e6) return fixed(v / 1e6, 1) + " M";
  if (v >= 1e3) return fixed(v / 1e3, 1) + " k";
  return fixed(v, 0);
}

std::string config_text(const json& config) {
  if (!config.is_object()) return config.is_null() ? "" : config.dump();
  std::string out;
  for (const auto& [k, v] : config.items()) {
    if (!out.empty()) out += " ";
    out += k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  return out;
}

double num(const json& j, double fallback = 0) {
  return j.is_number() ? j.get<double>() : fallback;
}

// Tick positions covering [lo, hi]: steps of 1, 2 or 5 times a power of ten.
std::vector<double> ticks(double lo, double hi) {
  double span = hi - lo;
  double raw = span / 5;
  double mag = std::pow(10, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  }
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push_back(t);
  return out;
}

// Percent labels with as many decimals as the tick step needs.
std::string percent_tick(double t, const std::vector<double>& all) {
  double step = all.size() > 1 ? (all[1] - all[0]) * 100 : 1;
  int decimals = step >= 0.999 ? 0 : step >= 0.0999 ? 1 : 2;
  return fixed(t * 100, decimals);
}

void range_of(const std::vector<double>& v, double& lo, double& hi) {
  lo = *std::min_element(v.begin(), v.end());
  hi = *std::max_element(v.begin(), v.end());
  double pad = (hi - lo) * 0.08;
  if (pad <= 0) pad = 0.01;
  lo -= pad;
  hi += pad;
}

std::string scatter_svg(const json& report) {
  const json& ranking = report["ranking"];
  std::vector<double> px = ranking["proxy"].get<std::vector<double>>();
  std::vector<double> fy = ranking["full"].get<std::vector<double>>();
  std::vector<std::string> ids = ranking["ids"].get<std::vector<std::string>>();
  // Proxy accuracies of candidates without a full-data one: a rug under the x axis.
  std::vector<std::pair<double, std::string>> rug;
  std::vector<double> all_x = px;
  std::map<std::string, const json*> rows;
  for (const auto& c : report["candidates"]) {
    rows[c["id"].get<std::string>()] = &c;
    if (c["proxy_accuracy"].is_number() && !c["full_accuracy"].is_number()) {
      rug.emplace_back(c["proxy_accuracy"].get<double>(), c["id"].get<std::string>());
      all_x.push_back(rug.back().first);
    }
  }
  const double W = 640, H = 440, L = 64, R = 20, T = 20, B = 58;
  std::ostringstream s;
  s << "<svg id=\"scatter\" class=\"plot\" viewBox=\"0 0 " << W << " " << H
    << "\" role=\"img\" aria-label=\"Proxy accuracy against full-data accuracy\">";
  if (all_x.empty()) {
    s << "<text x=\"" << W / 2 << "\" y=\"" << H / 2
      << "\" text-anchor=\"middle\" class=\"empty\">No candidate has a proxy accuracy yet.</text>"
         "</svg>";
    return s.str();
  }
  double x0, x1, y0 = 0, y1 = 1;
  range_of(all_x, x0, x1);
  if (!fy.empty()) range_of(fy, y0, y1);
  auto X = [&](double v) { return L + (v - x0) / (x1 - x0) * (W - L - R); };
  auto Y = [&](double v) { return H - B - (v - y0) / (y1 - y0) * (H - T - B); };
  s << "<clipPath id=\"plot-area\"><rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R
    << "\" height=\"" << H - T - B << "\"/></clipPath><rect class=\"frame\" x=\"" << L << "\" y=\""
    << T << "\" width=\"" << W - L - R << "\" height=\"" << H - T - B << "\"/>";
  const std::vector<double> xt = ticks(x0, x1);
  for (double t : xt) {
    s << "<line class=\"grid\" x1=\"" << X(t) << "\" x2=\"" << X(t) << "\" y1=\"" << T << "\" y2=\""
      << H - B << "\"/><text class=\"tick\" x=\"" << X(t) << "\" y=\"" << H - B + 16
      << "\" text-anchor=\"middle\">" << percent_tick(t, xt) << "</text>";
  }
  if (!fy.empty()) {
    const std::vector<double> yt = ticks(y0, y1);
    for (double t : yt) {
      s << "<line class=\"grid\" x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << Y(t)
        << "\" y2=\"" << Y(t) << "\"/><text class=\"tick\" x=\"" << L - 6 << "\" y=\"" << Y(t) + 4
        << "\" text-anchor=\"end\">" << percent_tick(t, yt) << "</text>";
    }
  }
  s << "<text class=\"axis\" x=\"" << L + (W - L - R) / 2 << "\" y=\"" << H - 14
    << "\" text-anchor=\"middle\">proxy accuracy (%)</text>"
    << "<text class=\"axis\" transform=\"translate(16 " << T + (H - T - B) / 2
    << ") rotate(-90)\" text-anchor=\"middle\">full-data accuracy (%)</text>";
  // Least-squares line: what Pearson's r measures.
  if (report["ranking"]["pearson"]["defined"].get<bool>()) {
    double mx = 0, my = 0;
    for (std::size_t i = 0; i < px.size(); ++i) {
      mx += px[i];
      my += fy[i];
    }
    mx /= px.size();
    my /= fy.size();
    double sxy = 0, sxx = 0;
    for (std::size_t i = 0; i < px.size(); ++i) {
      sxy += (px[i] - mx) * (fy[i] - my);
      sxx += (px[i] - mx) * (px[i] - mx);
    }
    double slope = sxy / sxx;
    double lo = *std::min_element(px.begin(), px.end());
    double hi = *std::max_element(px.begin(), px.end());
    s << "<line class=\"fit\" clip-path=\"url(#plot-area)\" x1=\"" << X(lo) << "\" y1=\""
      << Y(my + slope * (lo - mx)) << "\" x2=\"" << X(hi) << "\" y2=\"" << Y(my + slope * (hi - mx))
      << "\"/>";
  }
  for (const auto& [x, id] : rug) {
    s << "<line class=\"rug\" data-id=\"" << esc(id) << "\" x1=\"" << X(x) << "\" x2=\"" << X(x)
      << "\" y1=\"" << H - B - 8 << "\" y2=\"" << H - B << "\"><title>" << esc(id) << ": proxy "
      << fixed(x * 100, 2) << "%, not trained on the full data</title></line>";
  }
  std::set<std::string> picks;
  for (const auto& p : ranking["proxy_pick"]) picks.insert(p.get<std::string>());
  std::string best =
      ranking["true_best"].is_string() ? ranking["true_best"].get<std::string>() : "";
  for (std::size_t i = 0; i < px.size(); ++i) {
    const json& row = *rows[ids[i]];
    bool probe = row["probe"].get<bool>();
    std::string cls = std::string("pt ") + (probe ? "probe" : "spot");
    if (picks.count(ids[i])) cls += " pick";
    if (ids[i] == best) cls += " best";
    s << "<circle class=\"" << cls << "\" data-id=\"" << esc(ids[i]) << "\" cx=\"" << X(px[i])
      << "\" cy=\"" << Y(fy[i]) << "\" r=\"6\"><title>" << esc(ids[i]) << " ("
      << esc(config_text(row["config"])) << ")\nproxy " << fixed(px[i] * 100, 2) << "% (rank "
      << row["proxy_rank"].dump() << "), full " << fixed(fy[i] * 100, 2) << "% (rank "
      << row["full_rank"].dump() << ")" << (probe ? "\nprobe network" : "") << "</title></circle>";
    if (px.size() <= 16) {
      bool right_edge = X(px[i]) > W - R - 110;
      s << "<text class=\"ptlabel\" x=\"" << X(px[i]) + (right_edge ? -9 : 9) << "\" y=\""
        << Y(fy[i]) + 4 << "\"" << (right_edge ? " text-anchor=\"end\"" : "") << ">" << esc(ids[i])
        << "</text>";
    }
  }
  s << "</svg>";
  return s.str();
}

std::string heatmap_svg(const json& report) {
  const json& heat = report["heatmap"];
  const auto ids = heat["ids"].get<std::vector<std::string>>();
  const std::size_t m = ids.size();
  std::ostringstream s;
  if (m < 2) {
    s << "<svg id=\"heatmap\" class=\"plot\" viewBox=\"0 0 640 80\" role=\"img\" "
         "aria-label=\"Pairwise agreement\"><text x=\"320\" y=\"44\" text-anchor=\"middle\" "
         "class=\"empty\">Needs at least two candidates with both accuracies.</text></svg>";
    return s.str();
  }
  const bool labels = m <= 40;
  // Labels are cut to 24 characters (the cell's tooltip has the whole name).
  auto label = [&](std::size_t i) {
    if (!labels) return i % 5 == 0 ? std::to_string(i + 1) : std::string();
    return ids[i].size() > 24 ? esc(ids[i].substr(0, 23)) + "&hellip;" : esc(ids[i]);
  };
  std::size_t longest = 0;
  for (const auto& id : ids) longest = std::max(longest, std::min<std::size_t>(id.size(), 24));
  const double text_w = labels ? 6.2 * static_cast<double>(longest) : 18;
  const double left = text_w + 12;
  const double top = labels ? 0.87 * text_w + 12 : 24;  // column labels run up at 60 degrees
  const double cell = std::max(3.0, std::min(40.0, 480.0 / static_cast<double>(m)));
  const double size = cell * static_cast<double>(m);
  const double W = left + size + (labels ? 0.5 * text_w : 0) + 10, H = top + size + 10;
  s << "<svg id=\"heatmap\" class=\"plot\" viewBox=\"0 0 " << W << " " << H
    << "\" style=\"max-width:" << std::max(360.0, W) << "px\" role=\"img\" "
    << "aria-label=\"Pairwise ranking agreement between proxy and full data\">";
  for (std::size_t i = 0; i < m; ++i) {
    std::string text = label(i);
    if (text.empty()) continue;
    double offset = cell * static_cast<double>(i) + cell / 2;
    s << "<text class=\"hlabel\" x=\"" << left - 6 << "\" y=\"" << top + offset + 4
      << "\" text-anchor=\"end\">" << text << "</text>"
      << "<text class=\"hlabel\" transform=\"translate(" << left + offset + 3 << " " << top - 6
      << ") rotate(-60)\">" << text << "</text>";
  }
  const json& matrix = heat["matrix"];
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t j = 0; j < m; ++j) {
      int v = matrix[i][j].get<int>();
      const char* cls = i == j ? "self" : v > 0 ? "agree" : v < 0 ? "disagree" : "tie";
      s << "<rect class=\"cell " << cls << "\" x=\"" << left + cell * static_cast<double>(j)
        << "\" y=\"" << top + cell * static_cast<double>(i) << "\" width=\"" << cell
        << "\" height=\"" << cell << "\">";
      if (labels && i != j) {
        s << "<title>" << esc(ids[i]) << " vs " << esc(ids[j]) << ": "
          << (v > 0   ? "same order on proxy and full data"
              : v < 0 ? "proxy reverses the full-data order"
                      : "tied on proxy or full data")
          << "</title>";
      }
      s << "</rect>";
    }
  }
  s << "</svg>";
  return s.str();
}

std::string stat_row(const char* name, const json& c, const char* what) {
  std::ostringstream s;
  s << "<tr><th>" << name << "</th><td class=\"num big\">"
    << (c["defined"].get<bool>() ? fixed(c["value"].get<double>(), 3) : "&ndash;") << "</td><td>";
  const json& ci = c["ci"];
  if (ci["defined"].get<bool>()) {
    s << fixed(ci["low"].get<double>(), 3) << " to " << fixed(ci["high"].get<double>(), 3)
      << " <span class=\"muted\">(" << ci["resamples"].get<int64_t>() << " resamples)</span>";
  } else {
    s << "<span class=\"muted\">" << esc(ci["note"].get<std::string>()) << "</span>";
  }
  s << "</td><td class=\"muted\">"
    << (c["defined"].get<bool>() ? std::string(what) : esc(c["note"].get<std::string>()))
    << "</td></tr>";
  return s.str();
}

std::string statistics_html(const json& report) {
  const json& r = report["ranking"];
  std::ostringstream s;
  double conf = report["options"]["confidence"].get<double>();
  s << "<table class=\"stats\"><thead><tr><th>statistic</th><th>value</th><th>"
    << fixed(conf * 100, 0) << "% bootstrap CI</th><th>meaning</th></tr></thead><tbody>"
    << stat_row("Spearman &rho;", r["spearman"], "rank correlation (ties averaged)")
    << stat_row("Kendall &tau;<sub>b</sub>", r["kendall_tau_b"],
                "pairwise order agreement, tie-corrected")
    << stat_row("Pearson r", r["pearson"], "linear correlation of the accuracies (the paper's)");
  const json& tk = r["top_k"];
  s << "<tr><th>top-" << tk["k"].get<int64_t>() << " overlap</th><td class=\"num big\">"
    << (tk["defined"].get<bool>() ? std::to_string(tk["common"].get<int64_t>()) + " / " +
                                        std::to_string(tk["k"].get<int64_t>())
                                  : "&ndash;")
    << "</td><td></td><td class=\"muted\">"
    << esc(tk["note"].get<std::string>().empty()
               ? "of the proxy's best candidates, how many are among the true best"
               : tk["note"].get<std::string>())
    << "</td></tr>";
  const json& rg = r["regret"];
  s << "<tr><th>regret</th><td class=\"num big\">"
    << (rg["defined"].get<bool>() ? fixed(rg["value"].get<double>() * 100, 2) + " pt"
                                  : std::string("&ndash;"))
    << "</td><td></td><td class=\"muted\">full-data accuracy of the true best minus that of the "
       "proxy's pick"
    << (rg["note"].get<std::string>().empty() ? "" : "; " + esc(rg["note"].get<std::string>()))
    << "</td></tr>";
  const json& pr = r["pairs"];
  s << "<tr><th>pairs in order</th><td class=\"num big\">" << pct(pr["agreement"], 1)
    << "</td><td></td><td class=\"muted\">" << pr["concordant"].get<int64_t>() << " same order, "
    << pr["discordant"].get<int64_t>() << " reversed, " << pr["tied"].get<int64_t>()
    << " tied</td></tr></tbody></table>";
  return s.str();
}

std::string table_html(const json& report) {
  std::ostringstream s;
  s << "<table id=\"candidates\" class=\"sortable\"><thead><tr>"
       "<th data-type=\"num\">proxy rank</th><th>candidate</th><th>configuration</th>"
       "<th data-type=\"num\">proxy acc.</th><th data-type=\"num\">full acc.</th>"
       "<th data-type=\"num\">full rank</th><th data-type=\"num\">MACs</th>"
       "<th data-type=\"num\">params</th><th data-type=\"num\">proxy time</th>"
       "<th data-type=\"num\">full time</th><th>spot check</th><th>status</th>"
       "<th data-type=\"num\">records</th></tr></thead><tbody>";
  for (const auto& c : report["candidates"]) {
    auto sort_key = [](const json& v) { return v.is_number() ? v.dump() : std::string("-1e300"); };
    std::string full_time = "&ndash;";
    json full_key = nullptr;
    if (c["full_seconds"].is_number()) {
      full_time = duration(c["full_seconds"].get<double>());
      full_key = c["full_seconds"];
    } else if (c["full_seconds_estimate"].is_number()) {
      full_time = "<span class=\"muted\" title=\"estimated (" +
                  c["full_cost_method"].get<std::string>() + ")\">&asymp; " +
                  duration(c["full_seconds_estimate"].get<double>()) + "</span>";
      full_key = c["full_seconds_estimate"];
    }
    std::string spot = c["probe"].get<bool>() ? "probe" : c["spot_check"].get<bool>() ? "yes" : "";
    s << "<tr data-id=\"" << esc(c["id"].get<std::string>()) << "\""
      << (c["ranked"].get<bool>() ? " class=\"ranked\"" : "") << ">"
      << "<td class=\"num\" data-sort=\"" << sort_key(c["proxy_rank"]) << "\">"
      << (c["proxy_rank"].is_number() ? c["proxy_rank"].dump() : "&ndash;") << "</td>"
      << "<td>" << esc(c["id"].get<std::string>()) << "</td>"
      << "<td class=\"cfg\">" << esc(config_text(c["config"])) << "</td>"
      << "<td class=\"num\" data-sort=\"" << sort_key(c["proxy_accuracy"]) << "\">"
      << pct(c["proxy_accuracy"]) << "</td>"
      << "<td class=\"num\" data-sort=\"" << sort_key(c["full_accuracy"]) << "\">"
      << pct(c["full_accuracy"]) << "</td>"
      << "<td class=\"num\" data-sort=\"" << sort_key(c["full_rank"]) << "\">"
      << (c["full_rank"].is_number() ? c["full_rank"].dump() : "&ndash;") << "</td>"
      << "<td class=\"num\" data-sort=\"" << c["macs"].dump() << "\">"
      << (c["macs"].get<int64_t>() > 0 ? big_number(num(c["macs"])) : "&ndash;") << "</td>"
      << "<td class=\"num\" data-sort=\"" << c["params"].dump() << "\">"
      << (c["params"].get<int64_t>() > 0 ? big_number(num(c["params"])) : "&ndash;") << "</td>"
      << "<td class=\"num\" data-sort=\"" << c["proxy_seconds"].dump() << "\">"
      << (num(c["proxy_seconds"]) > 0 ? duration(num(c["proxy_seconds"])) : "&ndash;") << "</td>"
      << "<td class=\"num\" data-sort=\"" << sort_key(full_key) << "\">" << full_time << "</td>"
      << "<td>" << spot << "</td><td>" << esc(c["status"].get<std::string>()) << "</td>"
      << "<td class=\"num\" data-sort=\"" << c["records"].dump() << "\">" << c["records"].dump()
      << "</td></tr>";
  }
  s << "</tbody></table>";
  return s.str();
}

// Spearman against cost per trial, one point per choice with its interval as a bar.
std::string calibration_svg(const json& c) {
  const double w = 520, h = 260, l = 50, r = 20, t = 15, b = 40;
  double max_cost = 0;
  for (const auto& ch : c["choices"]) {
    if (ch["cost_per_trial"].is_number()) {
      max_cost = std::max(max_cost, ch["cost_per_trial"].get<double>());
    }
  }
  if (max_cost <= 0) max_cost = 1;
  auto x = [&](double v) { return l + (w - l - r) * v / max_cost; };
  auto y = [&](double v) { return t + (h - t - b) * (1 - (v + 1) / 2); };
  std::ostringstream s;
  s << "<svg viewBox=\"0 0 " << w << " " << h << "\" class=\"plot\" role=\"img\" "
    << "aria-label=\"Spearman against cost per trial\">";
  for (double v : {-1.0, -0.5, 0.0, 0.5, 1.0}) {
    s << "<line x1=\"" << l << "\" x2=\"" << w - r << "\" y1=\"" << y(v) << "\" y2=\"" << y(v)
      << "\" stroke=\"#e2e8f0\"/><text x=\"" << l - 6 << "\" y=\"" << y(v) + 4
      << "\" text-anchor=\"end\" font-size=\"11\">" << fixed(v, 1) << "</text>";
  }
  if (c["target"].is_number()) {
    const double tv = c["target"].get<double>();
    s << "<line x1=\"" << l << "\" x2=\"" << w - r << "\" y1=\"" << y(tv) << "\" y2=\"" << y(tv)
      << "\" stroke=\"#2f855a\" stroke-dasharray=\"4 3\"/>";
  }
  s << "<text x=\"" << (l + w - r) / 2 << "\" y=\"" << h - 8
    << "\" text-anchor=\"middle\" font-size=\"12\">compute per trial (share of a full-data "
       "trial)</text>";
  for (const auto& ch : c["choices"]) {
    if (!ch["spearman"].is_number() || !ch["cost_per_trial"].is_number()) continue;
    const double cx = x(ch["cost_per_trial"].get<double>());
    const std::string color =
        ch["meets_target"].is_boolean() && ch["meets_target"].get<bool>() ? "#2f855a" : "#c53030";
    if (ch["spearman_low"].is_number() && ch["spearman_high"].is_number()) {
      s << "<line x1=\"" << cx << "\" x2=\"" << cx << "\" y1=\""
        << y(ch["spearman_low"].get<double>()) << "\" y2=\"" << y(ch["spearman_high"].get<double>())
        << "\" stroke=\"" << color << "\"/>";
    }
    s << "<circle cx=\"" << cx << "\" cy=\"" << y(ch["spearman"].get<double>())
      << "\" r=\"4\" fill=\"" << color << "\"><title>" << esc(ch["name"].get<std::string>())
      << "</title></circle>";
  }
  s << "</svg>";
  return s.str();
}

std::string calibration_html(const json& c) {
  std::ostringstream s;
  s << "<h2 id=\"calibration\">Calibration</h2><p>";
  if (c["recommended"].is_string()) {
    s << "Calibration chose <b>" << esc(c["recommended"].get<std::string>())
      << "</b>: the cheapest proxy whose Spearman lower bound reached the target";
  } else {
    s << "<b>No proxy choice reached the target</b>";
    if (c["best"].is_string()) {
      s << "; the best found was <b>" << esc(c["best"].get<std::string>()) << "</b>";
    }
  }
  if (c["target"].is_number()) s << " (" << fixed(c["target"].get<double>(), 2) << ")";
  s << ". " << c["candidates"].size() << " candidates trained on the full data and on each choice, "
    << c["seeds"].dump() << " seed(s) each";
  if (c["seconds"].is_number()) {
    s << "; calibration trained for " << fixed(c["seconds"].get<double>(), 1) << " s";
  }
  s << ". With so few candidates a correlation is coarse: the interval resamples candidates "
       "and seeds.</p>";
  s << "<figure>" << calibration_svg(c)
    << "<figcaption>Each point is one choice (green: its lower bound meets the target; dashed: "
       "the target); bars: its interval.</figcaption></figure>";
  s << "<div class=\"tablewrap\"><table><thead><tr><th>choice</th><th>epochs</th>"
       "<th>Spearman</th><th>interval</th><th>Kendall &tau;</th><th>pairs agreeing</th>"
       "<th>compute / trial</th><th>search compute</th></tr></thead><tbody>";
  auto num = [](const json& v, int p) { return v.is_number() ? fixed(v.get<double>(), p) : "n/a"; };
  for (const auto& ch : c["choices"]) {
    const bool chosen = c["recommended"].is_string() && ch["name"] == c["recommended"];
    s << "<tr" << (chosen ? " class=\"chosen\"" : "") << "><td>"
      << esc(ch["name"].get<std::string>()) << (chosen ? " &larr;" : "") << "</td><td>"
      << ch["epochs"].dump() << "</td><td>" << num(ch["spearman"], 3) << "</td><td>["
      << num(ch["spearman_low"], 2) << ", " << num(ch["spearman_high"], 2) << "]</td><td>"
      << num(ch["kendall"], 3) << "</td><td>" << num(ch["agreement"], 2) << "</td><td>"
      << num(ch["cost_per_trial"], 3) << "</td><td>" << num(ch["search_cost"], 1) << "</td></tr>";
  }
  s << "</tbody></table></div>";
  return s.str();
}

std::string cost_html(const json& report) {
  const json& c = report["cost"];
  std::ostringstream s;
  double spent = num(c["spent_seconds"]);
  auto row = [&](const std::string& name, double secs, const std::string& note) {
    s << "<tr><th>" << name << "</th><td class=\"num\">" << duration(secs)
      << "</td><td class=\"num\">" << (spent > 0 ? fixed(secs / spent * 100, 1) + "%" : "")
      << "</td><td class=\"muted\">" << note << "</td></tr>";
  };
  std::string stages;
  for (const auto& [k, v] : c["stage_seconds"].items()) {
    if (k == "probes") continue;
    if (!stages.empty()) stages += ", ";
    stages += esc(k) + " " + duration(v.get<double>());
  }
  s << "<table class=\"cost\"><thead><tr><th>spent on</th><th>time</th><th>share</th><th></th>"
       "</tr></thead><tbody>";
  row("probe training", num(c["probes_seconds"]),
      report["manifest"].is_null() ? "no manifest given"
      : c.contains("probes_note")  ? esc(c["probes_note"].get<std::string>())
                                   : "full-data training of the probes");
  row("proxy selection", num(c["selection_seconds"]),
      stages.empty() ? (report["manifest"].is_null() ? "no manifest given" : "")
                     : "manifest stages: " + stages);
  row("proxy trials", num(c["proxy_trials_seconds"]), "every candidate trained on the proxy");
  row("spot checks", num(c["spot_checks_seconds"]), "candidates also trained on the full data");
  s << "<tr class=\"total\"><th>total</th><td class=\"num\">" << duration(spent)
    << "</td><td></td><td></td></tr></tbody></table>";
  s << "<p class=\"speedup\">";
  if (c["full_data_seconds"].is_number()) {
    s << "Training the " << c["estimated_candidates"].get<int64_t>()
      << " searched candidates on the full data would take about <b>"
      << duration(num(c["full_data_seconds"])) << "</b>. ";
    if (c["speedup"].is_number()) {
      s << "End-to-end speedup, probes and selection included: <b class=\"big\">"
        << fixed(num(c["speedup"]), 1) << "&times;</b>";
      if (c["speedup_without_generation"].is_number()) {
        s << " <span class=\"muted\">(search alone: "
          << fixed(num(c["speedup_without_generation"]), 1) << "&times;)</span>";
      }
    }
  } else {
    s << "The full-data cost cannot be estimated yet: no spot check, MACs or proxy ratio to "
         "scale from.";
  }
  s << "</p><ul class=\"how\">";
  for (const auto& t : c["estimate_text"]) s << "<li>" << esc(t.get<std::string>()) << "</li>";
  s << "</ul>";
  return s.str();
}

const char* kStyle = R"CSS(
:root{--fg:#1a202c;--muted:#5a6577;--line:#d5dbe3;--bg:#fff;--panel:#f6f8fa;
--agree:#2b6cb0;--disagree:#dd6b20;--tie:#c3cad4;--probe:#805ad5;--spot:#2b6cb0}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--fg);background:var(--bg)}
main{max-width:1120px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 10px;
border-bottom:1px solid var(--line);padding-bottom:4px}
.meta,.muted{color:var(--muted)}.meta{font-size:13px;margin:0}
.verdict{border-left:6px solid var(--tie);background:var(--panel);padding:12px 16px;
margin:18px 0;border-radius:4px}
.verdict.good{border-color:#2f855a}.verdict.moderate{border-color:#b7791f}
.verdict.weak,.verdict.thin{border-color:#dd6b20}.verdict.poor{border-color:#c53030}
.verdict.none{border-color:#718096}.verdict p{margin:4px 0}.verdict .headline{font-size:17px;
font-weight:600}
.warn{background:#fffaf0;border:1px solid #f6ad55;padding:8px 12px;border-radius:4px;
margin:8px 0}
.grid2{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:24px;
align-items:start}
@media (max-width:900px){.grid2{grid-template-columns:1fr}}
figure{margin:0}figcaption{font-size:13px;color:var(--muted);margin-top:4px}
svg.plot{width:100%;height:auto;display:block;font-size:12px}
.frame{fill:none;stroke:var(--line)}.grid{stroke:#edf0f4}.tick{fill:var(--muted);font-size:11px}
.axis{fill:var(--fg);font-size:13px}.fit{stroke:#a0aec0;stroke-dasharray:5 4;stroke-width:1.5}
tr.chosen td{font-weight:600;background:#f0fff4}.bottomline{border:1px solid #cbd5e0;border-radius:6px;padding:.4em 1em;margin:1em 0;background:#f7fafc}.bottomline p{margin:.4em 0}.pt{stroke:#fff;stroke-width:1.5;opacity:.9}.pt.spot{fill:var(--spot)}
.pt.probe{fill:var(--probe)}.pt.pick{stroke:#c53030;stroke-width:3}
.pt.best{stroke:#2f855a;stroke-width:3}.pt.pick.best{stroke:#1a202c}
.pt.hl,.rug.hl{stroke:#f6e05e;stroke-width:4}
.rug{stroke:#718096;stroke-width:2}.ptlabel{fill:var(--muted);font-size:10px}
.empty{fill:var(--muted);font-size:15px}
.cell{stroke:#fff;stroke-width:.5}.cell.agree{fill:var(--agree)}
.cell.disagree{fill:var(--disagree)}.cell.tie{fill:var(--tie)}.cell.self{fill:#f1f3f6}
.hlabel{fill:var(--muted);font-size:10px}
.legend{font-size:13px;color:var(--muted);display:flex;gap:14px;flex-wrap:wrap;margin-top:6px}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:4px;
vertical-align:-1px}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{background:var(--panel);font-weight:600;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.big{font-size:16px;font-weight:600}
table.stats th:first-child{white-space:nowrap}
#candidates tr.ranked td:nth-child(2){font-weight:600}
#candidates tr.hl td{background:#fefcbf}.cfg{font-family:ui-monospace,"DejaVu Sans Mono",
monospace;font-size:12px}
.sortable thead th{cursor:pointer;user-select:none}
.sortable thead th.asc::after{content:" \25B2"}.sortable thead th.desc::after{content:" \25BC"}
.tablewrap{max-height:640px;overflow:auto;border:1px solid var(--line);border-radius:4px}
.cost{max-width:760px}.cost tr.total th,.cost tr.total td{font-weight:700}
.speedup{font-size:16px}.how{color:var(--muted);font-size:13px}
footer{margin-top:36px;font-size:12px;color:var(--muted)}
)CSS";

// Runs first: any later script error lands in data-js-errors on <html>.
const char* kErrorHook = R"JS(
(function(){var errs=[];function note(m){errs.push(String(m));
document.documentElement.setAttribute('data-js-errors',errs.join(' | '));}
window.addEventListener('error',function(e){note(e.message||'error');});
window.addEventListener('unhandledrejection',function(e){note(e.reason);});
window.__reportError=note;})();
)JS";

const char* kScript = R"JS(
(function(){
try{
  var rows=document.querySelectorAll('#candidates tbody tr');
  var byId={};
  function marks(id){return document.querySelectorAll('#scatter [data-id="'+
    (window.CSS&&CSS.escape?CSS.escape(id):id)+'"]');}
  function light(id,on){var m=marks(id);for(var i=0;i<m.length;i++)m[i].classList.toggle('hl',on);
    var r=byId[id];if(r)r.classList.toggle('hl',on);}
  for(var i=0;i<rows.length;i++){(function(r){var id=r.getAttribute('data-id');byId[id]=r;
    r.addEventListener('mouseenter',function(){light(id,true);});
    r.addEventListener('mouseleave',function(){light(id,false);});})(rows[i]);}
  var pts=document.querySelectorAll('#scatter [data-id]');
  for(var j=0;j<pts.length;j++){(function(p){var id=p.getAttribute('data-id');
    p.addEventListener('mouseenter',function(){light(id,true);});
    p.addEventListener('mouseleave',function(){light(id,false);});
    p.addEventListener('click',function(){var r=byId[id];if(r)r.scrollIntoView({block:'center'});});
  })(pts[j]);}
  var table=document.getElementById('candidates');
  var heads=table.querySelectorAll('thead th');
  for(var h=0;h<heads.length;h++){(function(th,col){th.addEventListener('click',function(){
    var asc=!th.classList.contains('asc');
    for(var k=0;k<heads.length;k++)heads[k].classList.remove('asc','desc');
    th.classList.add(asc?'asc':'desc');
    var numeric=th.getAttribute('data-type')==='num';
    var body=table.tBodies[0];var list=Array.prototype.slice.call(body.rows);
    list.sort(function(a,b){var x=a.cells[col],y=b.cells[col];
      var u=numeric?parseFloat(x.getAttribute('data-sort')):x.textContent;
      var v=numeric?parseFloat(y.getAttribute('data-sort')):y.textContent;
      var c=numeric?u-v:String(u).localeCompare(String(v));return asc?c:-c;});
    for(var n=0;n<list.length;n++)body.appendChild(list[n]);});})(heads[h],h);}
  document.documentElement.setAttribute('data-report-ready',
    String(document.querySelectorAll('#scatter circle.pt').length));
}catch(e){window.__reportError(e&&e.message?e.message:e);}
})();
)JS";

}  // namespace

std::string render_report_html(const json& report) {
  std::ostringstream s;
  const std::string title = report["title"].get<std::string>();
  const json& ranking = report["ranking"];
  const json& verdict = report["verdict"];
  const int64_t n = ranking["n"].get<int64_t>();
  const int64_t records = report["records"].get<int64_t>();
  s << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
       "<meta name=\"generator\" content=\"dataproxy report\">";
  if (int64_t refresh = report["options"]["refresh_seconds"].get<int64_t>(); refresh > 0) {
    s << "<meta http-equiv=\"refresh\" content=\"" << refresh << "\">";
  }
  s << "<title>" << esc(title) << "</title><style>" << kStyle << "</style><script>" << kErrorHook
    << "</script></head>\n<body><main>";
  s << "<h1>" << esc(title) << "</h1>";
  s << "<p class=\"meta\" id=\"generated\">Generated "
    << esc(report["generated"].get<std::string>()) << " from <b id=\"record-count\">" << records
    << "</b> record" << (records == 1 ? "" : "s") << " in <code>"
    << esc(report["sources"]["results"].get<std::string>()) << "</code>";
  if (report["options"]["refresh_seconds"].get<int64_t>() > 0) {
    s << " &middot; refreshes every " << report["options"]["refresh_seconds"].get<int64_t>()
      << " s while the experiment runs";
  }
  s << "</p>";
  if (const json& m = report["manifest"]; m.is_object()) {
    s << "<p class=\"meta\">Proxy: " << esc(m["method"].get<std::string>()) << " selection";
    if (m["ratio"].is_number()) s << " at " << fixed(m["ratio"].get<double>() * 100, 1) << "%";
    if (!m["dataset"].get<std::string>().empty()) {
      s << " of " << esc(m["dataset"].get<std::string>());
    }
    if (!m["space_name"].get<std::string>().empty()) {
      s << ", space " << esc(m["space_name"].get<std::string>());
    }
    s << ", " << m["probes"].size() << " probes &middot; manifest <code>"
      << esc(m["key"].get<std::string>().substr(0, 16)) << "</code></p>";
  }
  if (report.contains("summary") && !report["summary"]["lines"].empty()) {
    s << "<section class=\"bottomline\" id=\"bottom-line\">";
    for (const auto& line : report["summary"]["lines"]) {
      s << "<p>" << esc(line.get<std::string>()) << "</p>";
    }
    s << "</section>";
  }
  s << "<section class=\"verdict " << esc(verdict["level"].get<std::string>())
    << "\" id=\"verdict\"><p class=\"headline\">" << esc(verdict["headline"].get<std::string>())
    << "</p><p>Spot checks with both accuracies: <b id=\"spot-count\">" << n << "</b>";
  if (report["manifest"].is_object()) s << " (probes included)";
  s << ".</p>";
  if (verdict.contains("regret_text")) {
    s << "<p>" << esc(verdict["regret_text"].get<std::string>()) << "</p>";
  }
  for (const auto& a : verdict["advice"]) s << "<p>&rarr; " << esc(a.get<std::string>()) << "</p>";
  s << "</section>";
  for (const auto& w : report["warnings"]) {
    s << "<p class=\"warn\">" << esc(w.get<std::string>()) << "</p>";
  }

  s << "<h2>Ranking statistics</h2>" << statistics_html(report);

  s << "<div class=\"grid2\"><section><h2>Proxy vs full-data accuracy</h2><figure>"
    << scatter_svg(report)
    << "<figcaption><div class=\"legend\"><span><i class=\"sw\" style=\"background:var(--spot)"
       "\"></i>spot check</span><span><i class=\"sw\" style=\"background:var(--probe)\"></i>"
       "probe</span><span><i class=\"sw\" style=\"background:#fff;border:3px solid #c53030\"></i>"
       "proxy's pick</span><span><i class=\"sw\" style=\"background:#fff;border:3px solid "
       "#2f855a\"></i>true best (black ring: both)</span><span><i class=\"sw\" "
       "style=\"background:#718096;width:3px"
       "\"></i>proxy only (not spot-checked)</span></div>Each point is one candidate; dashed: "
       "least-squares line. Hover a point to find it in the table.</figcaption></figure>"
       "</section>";
  const json& heat = report["heatmap"];
  s << "<section><h2>Pairwise agreement</h2><figure>" << heatmap_svg(report)
    << "<figcaption><div class=\"legend\"><span><i class=\"sw\" style=\"background:var(--agree)"
       "\"></i>same order</span><span><i class=\"sw\" style=\"background:var(--disagree)\"></i>"
       "reversed by the proxy</span><span><i class=\"sw\" style=\"background:var(--tie)\"></i>"
       "tie</span></div>Each cell is a pair of spot-checked candidates, rows and columns sorted "
       "by full-data accuracy (best first, as in Figure 2 of Park 2021).";
  if (heat["shown"].get<int64_t>() < heat["total"].get<int64_t>()) {
    s << " Showing the best " << heat["shown"].get<int64_t>() << " of "
      << heat["total"].get<int64_t>() << ".";
  }
  s << "</figcaption></figure></section></div>";

  s << "<h2>Candidates</h2><p class=\"muted\">All " << report["candidates"].size()
    << " candidates, ranked by proxy accuracy; bold: spot-checked. Click a heading to sort.</p>"
    << "<div class=\"tablewrap\">" << table_html(report) << "</div>";

  s << "<h2>Cost</h2>" << cost_html(report);
  if (report.contains("calibration")) s << calibration_html(report["calibration"]);

  const json& o = report["options"];
  s << "<footer>Confidence intervals: percentile bootstrap over candidates, "
    << o["bootstrap_resamples"].get<int64_t>() << " resamples, seed " << o["seed"].dump()
    << ". Records by status:";
  for (const auto& [k, v] : report["record_status"].items()) s << " " << esc(k) << " " << v.dump();
  s << ". Data: report.json next to this file.</footer>";
  s << "</main><script>" << kScript << "</script></body></html>\n";
  return s.str();
}

}  // namespace dataproxy
