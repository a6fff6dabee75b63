// Parsing, validation and export of search spaces. The YAML schema is described at the top of
// dataproxy/search_space.h and in search_spaces/README.md.
#include "dataproxy/search_space.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <set>
#include <sstream>

#include "dataproxy/error.h"
#include "dataproxy/files.h"
#include "space/families.h"

namespace dataproxy {
namespace {

using space::Family;
using space::SettingSpec;

/// Where the text came from, for error messages.
struct Source {
  std::string origin;

  std::string where(const YAML::Node& node) const {
    if (!node.IsDefined() || node.Mark().is_null()) return origin;
    return origin + ":" + std::to_string(node.Mark().line + 1) + ":" +
           std::to_string(node.Mark().column + 1);
  }

  [[noreturn]] void fail(const YAML::Node& node, const std::string& path, const std::string& what,
                         const std::string& fix) const {
    throw InvalidInput(where(node) + ": " + (path.empty() ? "" : "`" + path + "`: ") + what +
                       (fix.empty() ? "" : "; " + fix));
  }
};

std::string show(const YAML::Node& node) {
  if (node.IsScalar()) return "'" + node.Scalar() + "'";
  if (node.IsSequence()) return node.size() == 0 ? "an empty list" : "a list";
  if (node.IsMap()) return "a mapping";
  return "nothing";
}

bool parse_int(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = v;
  return true;
}

bool parse_double(const std::string& s, double* out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || *end != '\0' || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

/// A YAML scalar as JSON: quoted text stays text; plain scalars become numbers or booleans
/// where they read as such (YAML 1.2 core schema).
json scalar_json(const YAML::Node& node) {
  const std::string& s = node.Scalar();
  if (node.Tag() == "!") return s;
  int64_t i = 0;
  double d = 0;
  if (parse_int(s, &i)) return i;
  if (parse_double(s, &d)) return d;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  return s;
}

/// A YAML node as JSON, checking mappings for duplicate keys on the way.
json to_json_value(const Source& src, const YAML::Node& node, const std::string& path) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return scalar_json(node);
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (std::size_t i = 0; i < node.size(); ++i) {
        out.push_back(to_json_value(src, node[i], path + "[" + std::to_string(i) + "]"));
      }
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) {
        const std::string key = kv.first.Scalar();
        if (out.contains(key)) src.fail(kv.first, path, "duplicate key '" + key + "'", "keep one");
        out[key] = to_json_value(src, kv.second, path.empty() ? key : path + "." + key);
      }
      return out;
    }
    default:
      return nullptr;
  }
}

/// The keys of a mapping node, each checked against `allowed` and for duplicates.
std::vector<std::pair<std::string, YAML::Node>> mapping(const Source& src, const YAML::Node& node,
                                                        const std::string& path,
                                                        const std::vector<std::string>& allowed) {
  if (!node.IsMap()) {
    src.fail(node, path, "expected a mapping of keys to values, found " + show(node),
             "see search_spaces/README.md for the schema");
  }
  std::string allowed_text;
  for (const auto& a : allowed) allowed_text += (allowed_text.empty() ? "" : ", ") + a;
  std::vector<std::pair<std::string, YAML::Node>> out;
  std::set<std::string> seen;
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    const std::string key_path = path.empty() ? key : path + "." + key;
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      src.fail(kv.first, key_path, "unknown key '" + key + "'", "known keys: " + allowed_text);
    }
    if (!seen.insert(key).second) src.fail(kv.first, key_path, "duplicate key", "keep one");
    out.emplace_back(key, kv.second);
  }
  return out;
}

std::string get_text(const Source& src, const YAML::Node& node, const std::string& path) {
  if (!node.IsScalar()) src.fail(node, path, "expected text, found " + show(node), "");
  return node.Scalar();
}

double get_number(const Source& src, const YAML::Node& node, const std::string& path, double lo,
                  double hi) {
  double d = 0;
  if (!node.IsScalar() || node.Tag() == "!" || !parse_double(node.Scalar(), &d)) {
    src.fail(node, path, "expected a number, found " + show(node), "");
  }
  if (d < lo || d > hi) {
    std::ostringstream os;
    os << "value " << d << " is outside [" << lo << ", " << hi << "]";
    src.fail(node, path, os.str(), "choose a value in that range");
  }
  return d;
}

int64_t get_int(const Source& src, const YAML::Node& node, const std::string& path, int64_t lo,
                int64_t hi) {
  int64_t i = 0;
  if (!node.IsScalar() || node.Tag() == "!" || !parse_int(node.Scalar(), &i)) {
    src.fail(node, path, "expected an integer, found " + show(node), "");
  }
  if (i < lo || i > hi) {
    src.fail(node, path,
             "value " + std::to_string(i) + " is outside [" + std::to_string(lo) + ", " +
                 std::to_string(hi) + "]",
             "choose a value in that range");
  }
  return i;
}

bool get_bool(const Source& src, const YAML::Node& node, const std::string& path) {
  json v = node.IsScalar() ? scalar_json(node) : json();
  if (!v.is_boolean()) src.fail(node, path, "expected true or false, found " + show(node), "");
  return v.get<bool>();
}

std::string get_enum(const Source& src, const YAML::Node& node, const std::string& path,
                     const std::vector<std::string>& allowed) {
  std::string v = get_text(src, node, path);
  if (std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    src.fail(node, path, "unknown value '" + v + "'", "use one of: " + list);
  }
  return v;
}

/// Integral numbers of integer settings are stored as integers (16.0 -> 16).
json normalize(const SettingSpec& spec, json v) {
  auto fix = [](json& x) {
    // Whole numbers within int64's range only: converting 1e300 is undefined; it stays a float,
    // which check_value then refuses by name.
    if (x.is_number_float() && std::floor(x.get<double>()) == x.get<double>() &&
        std::abs(x.get<double>()) < 9.2e18) {
      x = static_cast<int64_t>(x.get<double>());
    }
  };
  if (spec.kind == SettingSpec::Kind::Int) fix(v);
  if (spec.kind == SettingSpec::Kind::IntList && v.is_array()) {
    for (auto& x : v) fix(x);
  }
  return v;
}

TrainSettings parse_training(const Source& src, const YAML::Node& node) {
  TrainSettings t;
  const std::string p = "training";
  for (const auto& [key, v] :
       mapping(src, node, p,
               {"optimizer", "learning_rate", "weight_decay", "momentum", "batch_size", "epochs",
                "schedule", "step_milestones", "step_gamma", "augmentation"})) {
    const std::string kp = p + "." + key;
    if (key == "optimizer") {
      t.optimizer = get_enum(src, v, kp, {"adam", "sgd"});
    } else if (key == "learning_rate") {
      t.learning_rate = get_number(src, v, kp, 1e-12, 100);
    } else if (key == "weight_decay") {
      t.weight_decay = get_number(src, v, kp, 0, 1);
    } else if (key == "momentum") {
      t.momentum = get_number(src, v, kp, 0, 0.999999);
    } else if (key == "batch_size") {
      t.batch_size = get_int(src, v, kp, 1, 1 << 20);
    } else if (key == "epochs") {
      t.epochs = get_int(src, v, kp, 1, 100000);
    } else if (key == "schedule") {
      t.schedule = get_enum(src, v, kp, {"constant", "cosine", "step"});
    } else if (key == "step_milestones") {
      if (!v.IsSequence()) src.fail(v, kp, "expected a list of epochs, found " + show(v), "");
      for (std::size_t i = 0; i < v.size(); ++i) {
        const std::string ip = kp + "[" + std::to_string(i) + "]";
        int64_t m = get_int(src, v[i], ip, 1, 100000);
        if (!t.step_milestones.empty() && m <= t.step_milestones.back()) {
          src.fail(v[i], ip, "milestones must increase", "list them in increasing order");
        }
        t.step_milestones.push_back(m);
      }
    } else if (key == "step_gamma") {
      t.step_gamma = get_number(src, v, kp, 1e-9, 1);
    } else if (key == "augmentation") {
      for (const auto& [akey, av] :
           mapping(src, v, kp, {"random_crop_padding", "horizontal_flip"})) {
        if (akey == "random_crop_padding") {
          t.augmentation.random_crop_padding = get_int(src, av, kp + "." + akey, 0, 1024);
        } else {
          t.augmentation.horizontal_flip = get_bool(src, av, kp + "." + akey);
        }
      }
    }
  }
  if (t.schedule == "step" && t.step_milestones.empty()) {
    src.fail(node, p + ".step_milestones", "schedule 'step' needs milestones",
             "add e.g. `step_milestones: [15, 25]` or use schedule 'cosine'");
  }
  return t;
}

// JSON text of a value for a message. yaml-cpp can hand back bytes that are not UTF-8 (seen
// with a NUL in a flow sequence) even from UTF-8 text; they are shown as U+FFFD, not thrown.
std::string printable(const json& v) {
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string number_text(const json& v) {
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::floor(d) == d && std::fabs(d) < 1e15) return std::to_string(static_cast<int64_t>(d));
  }
  return printable(v);
}

std::string choices_text(const std::vector<json>& choices) {
  std::string out;
  for (const auto& c : choices) out += (out.empty() ? "" : ", ") + number_text(c);
  return "[" + out + "]";
}

/// Numbers compare by value (16 == 16.0); text by equality; nothing else matches.
bool same_choice(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  if (a.is_string() && b.is_string()) return a.get<std::string>() == b.get<std::string>();
  return false;
}

bool is_identifier(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

/// The `torchscript:` block; relative paths are relative to the space file's folder.
TorchScriptSource parse_torchscript(const Source& src, const YAML::Node& node) {
  TorchScriptSource t;
  const fs::path origin(src.origin);
  t.space_file = origin;
  const fs::path base = fs::absolute(origin).parent_path();
  const std::string p = "torchscript";
  std::optional<YAML::Node> module_node;
  for (const auto& [key, v] : mapping(src, node, p, {"module", "function", "exports", "seed"})) {
    const std::string kp = p + "." + key;
    if (key == "module") {
      module_node.emplace(v);
      t.module = (base / get_text(src, v, kp)).lexically_normal();
    } else if (key == "function") {
      t.function = get_text(src, v, kp);
      if (!is_identifier(t.function)) {
        src.fail(v, kp, "'" + t.function + "' is not a Python function name",
                 "name the function of `module` that builds a network, e.g. build");
      }
    } else if (key == "exports") {
      t.exports = (base / get_text(src, v, kp)).lexically_normal();
    } else if (key == "seed") {
      t.seed = get_int(src, v, kp, 0, int64_t{1} << 62);
    }
  }
  if (!module_node) {
    src.fail(node, p + ".module", "missing",
             "add `module: my_networks.py`, the Python file whose build(config) returns a "
             "torch.nn.Module");
  }
  std::error_code ec;  // a name too long for the file system is an answer, not an exception
  if (!fs::is_regular_file(t.module, ec)) {
    src.fail(
        *module_node, p + ".module",
        "file " + t.module.string() +
            (ec && ec != std::errc::no_such_file_or_directory ? " cannot be read: " + ec.message()
                                                              : " does not exist"),
        "give the path of your Python file, relative to the space file's folder");
  }
  t.module_sha256 = sha256_file(t.module);
  if (t.exports.empty()) {
    t.exports = (base / (origin.stem().string() + ".export")).lexically_normal();
  }
  return t;
}

}  // namespace

json TrainSettings::to_json() const {
  return json{{"optimizer", optimizer},
              {"learning_rate", learning_rate},
              {"weight_decay", weight_decay},
              {"momentum", momentum},
              {"batch_size", batch_size},
              {"epochs", epochs},
              {"schedule", schedule},
              {"step_milestones", step_milestones},
              {"step_gamma", step_gamma},
              {"augmentation",
               {{"random_crop_padding", augmentation.random_crop_padding},
                {"horizontal_flip", augmentation.horizontal_flip}}}};
}

SearchSpace SearchSpace::load(const fs::path& path) {
  if (!fs::exists(path)) {
    throw InvalidInput("search space file " + path.string() +
                       " does not exist; pass a YAML file such as search_spaces/resnet20.yaml");
  }
  return parse(read_file(path), path.string());
}

namespace {

// The document: UTF-8 (other bytes would pass yaml-cpp and fail later, in a message, as a JSON
// library error), valid YAML, a mapping.
YAML::Node load_document(const Source& src, const std::string& yaml_text) {
  try {
    json(yaml_text).dump();
  } catch (const json::exception& e) {
    const std::string what = e.what();  // "[json.exception.type_error.316] invalid UTF-8 byte..."
    throw InvalidInput(src.origin + " is not UTF-8 text (" + what.substr(what.find("] ") + 2) +
                       "); save it as UTF-8");
  }
  // Initialized, not assigned: assigning to a YAML::Node rebinds the node it refers to.
  const YAML::Node root = [&] {
    try {
      return YAML::Load(yaml_text);
    } catch (const YAML::Exception& e) {
      throw InvalidInput(src.origin + ":" + std::to_string(e.mark.line + 1) + ":" +
                         std::to_string(e.mark.column + 1) + ": not valid YAML: " + e.msg +
                         "; fix the syntax there");
    }
  }();
  if (!root.IsMap()) {
    src.fail(root, "", "a search space must be a YAML mapping with keys name, family, parameters",
             "see search_spaces/README.md");
  }
  return root;
}

// The top-level keys, each read as far as it can be without the others.
struct TopLevel {
  std::string name, family, notes;
  TrainSettings training;
  // std::optional because assigning to a YAML::Node rebinds the node it refers to.
  std::optional<YAML::Node> parameters, model, family_node, torchscript;
};

TopLevel read_top_level(const Source& src, const YAML::Node& root) {
  TopLevel top;
  for (const auto& [key, v] :
       mapping(src, root, "",
               {"name", "family", "notes", "parameters", "model", "torchscript", "training"})) {
    if (key == "name") {
      top.name = get_text(src, v, key);
    } else if (key == "family") {
      top.family_node.emplace(v);
      top.family = get_text(src, v, key);
    } else if (key == "notes") {
      top.notes = v.IsNull() ? "" : get_text(src, v, key);
    } else if (key == "parameters") {
      top.parameters.emplace(v);
    } else if (key == "model") {
      top.model.emplace(v);
    } else if (key == "training") {
      top.training = parse_training(src, v);
    } else if (key == "torchscript") {
      top.torchscript.emplace(v);
    }
  }
  if (top.name.empty()) src.fail(root, "name", "missing", "add `name: <short name of the space>`");
  if (!top.family_node) {
    src.fail(root, "family", "missing", "add `family: " + space::family_names() + "` (one)");
  }
  return top;
}

const Family& find_family(const Source& src, const TopLevel& top) {
  const Family* family = space::find_family(top.family);
  if (family == nullptr) {
    src.fail(*top.family_node, "family", "unknown family '" + top.family + "'",
             "use one of: " + space::family_names());
  }
  return *family;
}

// The `torchscript:` block: required by family torchscript, refused by the others.
TorchScriptSource read_torchscript(const Source& src, const YAML::Node& root, const TopLevel& top) {
  if (top.family == "torchscript") {
    if (!top.torchscript) {
      src.fail(root, "torchscript", "missing",
               "add `torchscript: {module: my_networks.py}` naming the Python file whose "
               "build(config) returns each configuration's torch.nn.Module");
    }
    return parse_torchscript(src, *top.torchscript);
  }
  if (top.torchscript) {
    src.fail(*top.torchscript, "torchscript", "only family torchscript reads this block",
             "remove it, or set `family: torchscript`");
  }
  return {};
}

std::string setting_names(const Family& family) {
  std::string names;
  for (const auto& s : family.settings) names += (names.empty() ? "" : ", ") + s.name;
  return names;
}

// One entry of a parameter's `choices`, its value normalized and checked against the setting.
// A named choice takes its value from `par.values` (and writes the normalized value back).
json parse_choice(const Source& src, const YAML::Node& cn, const std::string& cp,
                  const SettingSpec& spec, Parameter& par) {
  if (!cn.IsScalar()) {
    src.fail(cn, cp, "expected a number or a name, found " + show(cn),
             "for a list-valued choice, name it here and give its list under `values`");
  }
  json choice = scalar_json(cn);
  if (!choice.is_number() && !choice.is_string()) {
    src.fail(cn, cp, "expected a number or a name, found " + show(cn), "");
  }
  for (const auto& prev : par.choices) {
    if (same_choice(prev, choice))
      src.fail(cn, cp, "duplicate choice " + show(cn), "list each choice once");
  }
  json value = choice;
  if (choice.is_string()) {
    if (!par.values.contains(choice.get<std::string>())) {
      src.fail(cn, cp, "named choice " + show(cn) + " has no value",
               "add it under `values:` of parameter " + par.name);
    }
    value = par.values[choice.get<std::string>()];
  } else {
    choice = normalize(spec, choice);
    value = choice;
  }
  value = normalize(spec, value);
  if (choice.is_string()) par.values[choice.get<std::string>()] = value;
  const std::string err = space::check_value(spec, value);
  if (!err.empty()) {
    src.fail(cn, cp, "value " + printable(value) + " does not fit " + par.name + ": " + err,
             par.name + " is the " + spec.meaning);
  }
  return choice;
}

// Entry `i` of `parameters:`; `earlier` are the entries before it.
Parameter parse_parameter(const Source& src, const YAML::Node& pn, std::size_t i,
                          const Family& family, const std::vector<Parameter>& earlier) {
  const std::string pp = "parameters[" + std::to_string(i) + "]";
  Parameter par;
  std::optional<YAML::Node> choices_opt, values_opt;
  for (const auto& [key, v] : mapping(src, pn, pp, {"name", "choices", "values", "description"})) {
    if (key == "name") {
      par.name = get_text(src, v, pp + ".name");
    } else if (key == "choices") {
      choices_opt.emplace(v);
    } else if (key == "values") {
      values_opt.emplace(v);
    } else {
      par.description = v.IsNull() ? "" : get_text(src, v, pp + ".description");
    }
  }
  if (par.name.empty()) src.fail(pn, pp + ".name", "missing", "name the parameter");
  const std::string np = "parameters." + par.name;
  const SettingSpec* spec = space::find_setting(family, par.name);
  if (spec == nullptr) {
    src.fail(pn, np, "'" + par.name + "' is not a setting of family " + family.name,
             "parameters of this family are: " + setting_names(family));
  }
  for (const auto& other : earlier) {
    if (other.name == par.name) src.fail(pn, np, "duplicate parameter", "list it once");
  }
  if (!choices_opt) src.fail(pn, np + ".choices", "missing", "e.g. `choices: [8, 16, 32]`");
  const YAML::Node& choices_node = *choices_opt;
  if (!choices_node.IsSequence() || choices_node.size() == 0) {
    src.fail(choices_node, np + ".choices",
             "expected a non-empty list of choices, found " + show(choices_node),
             "e.g. `choices: [8, 16, 32]`");
  }
  const YAML::Node values_node = values_opt ? *values_opt : pn;
  if (values_opt) {
    if (!values_node.IsMap()) {
      src.fail(values_node, np + ".values",
               "expected a mapping from choice names to values, found " + show(values_node),
               "e.g. `values: {r1: [1, 2, 2], r2: [1, 2, 3]}`");
    }
    par.values = to_json_value(src, values_node, np + ".values");
  }
  for (std::size_t c = 0; c < choices_node.size(); ++c) {
    const std::string cp = np + ".choices[" + std::to_string(c) + "]";
    par.choices.push_back(parse_choice(src, choices_node[c], cp, *spec, par));
  }
  for (const auto& [vname, _] : par.values.items()) {
    bool used = false;
    for (const auto& c : par.choices) used = used || (c.is_string() && c == vname);
    if (!used) {
      src.fail(values_node, np + ".values." + vname,
               "'" + vname + "' is not one of the choices " + choices_text(par.choices),
               "add it to `choices` or remove it from `values`");
    }
  }
  return par;
}

std::vector<Parameter> parse_parameters(const Source& src, const YAML::Node& root,
                                        const std::optional<YAML::Node>& node,
                                        const Family& family) {
  if (!node) src.fail(root, "parameters", "missing", "add a list of {name, choices} entries");
  const YAML::Node& params_node = *node;
  if (!params_node.IsSequence() || params_node.size() == 0) {
    src.fail(params_node, "parameters", "expected a non-empty list, found " + show(params_node),
             "list at least one parameter as {name: B, choices: [8, 16, 32]}");
  }
  std::vector<Parameter> out;
  for (std::size_t i = 0; i < params_node.size(); ++i) {
    out.push_back(parse_parameter(src, params_node[i], i, family, out));
  }
  return out;
}

// The fixed `model:` settings: known to the family, not also searched, each value checked.
json parse_model_settings(const Source& src, const std::optional<YAML::Node>& node,
                          const Family& family, const std::vector<Parameter>& parameters) {
  json settings = json::object();
  if (!node || node->IsNull()) return settings;
  const YAML::Node& model_node = *node;
  if (!model_node.IsMap()) {
    src.fail(model_node, "model", "expected a mapping of settings, found " + show(model_node), "");
  }
  for (const auto& kv : model_node) {
    const std::string key = kv.first.Scalar();
    const std::string kp = "model." + key;
    const SettingSpec* spec = space::find_setting(family, key);
    if (spec == nullptr) {
      src.fail(kv.first, kp, "unknown setting '" + key + "' for family " + family.name,
               "known settings: " + setting_names(family));
    }
    if (settings.contains(key)) src.fail(kv.first, kp, "duplicate key", "keep one");
    for (const auto& par : parameters) {
      if (par.name == key) {
        src.fail(kv.first, kp, "'" + key + "' is also a searched parameter",
                 "remove it from `model:` or from `parameters:`");
      }
    }
    json value = normalize(*spec, to_json_value(src, kv.second, kp));
    const std::string err = space::check_value(*spec, value);
    if (!err.empty()) {
      src.fail(kv.second, kp, "value " + printable(value) + ": " + err,
               key + " is the " + spec->meaning);
    }
    settings[key] = value;
  }
  return settings;
}

// Open families (torchscript) get num_classes and input_shape from the export helper.
void check_reserved_names(const Source& src, const YAML::Node& root, const Family& family,
                          const json& model_settings, const std::vector<Parameter>& parameters) {
  if (!family.open) return;
  for (const char* reserved : {"num_classes", "input_shape"}) {
    bool used = model_settings.contains(reserved);
    for (const auto& par : parameters) used = used || par.name == reserved;
    if (used) {
      src.fail(root, reserved, "this name is set by the export helper from the data",
               "rename your parameter or `model:` setting");
    }
  }
}

// Every family setting neither searched nor given in `model:` takes its default.
void add_defaults(const Family& family, const std::vector<Parameter>& parameters,
                  json& model_settings) {
  for (const auto& s : family.settings) {
    bool searched = false;
    for (const auto& par : parameters) searched = searched || par.name == s.name;
    if (!searched && !model_settings.contains(s.name)) model_settings[s.name] = s.default_value;
  }
}

// Settings that depend on each other (list lengths, feature_stage) are checked per config.
void check_every_config(const SearchSpace& sp, const Family& family, const std::string& origin) {
  if (family.check == nullptr) return;
  std::size_t checked = 0;
  for (const auto& config : sp.enumerate()) {
    json all = sp.model_settings();
    for (const auto& par : sp.parameters()) all[par.name] = sp.resolve(config, par.name);
    const std::string err = family.check(all);
    if (!err.empty()) {
      throw InvalidInput(origin + ": configuration " + sp.config_id(config) + ": " + err +
                         "; change the parameters' choices or the `model:` settings");
    }
    if (++checked >= 100000) break;
  }
}

}  // namespace

SearchSpace SearchSpace::parse(const std::string& yaml_text, const std::string& origin) {
  const Source src{origin};
  const YAML::Node root = load_document(src, yaml_text);
  const TopLevel top = read_top_level(src, root);
  const Family& family = find_family(src, top);

  SearchSpace sp;
  sp.name_ = top.name;
  sp.family_ = top.family;
  sp.notes_ = top.notes;
  sp.training_ = top.training;
  sp.torchscript_ = read_torchscript(src, root, top);
  sp.parameters_ = parse_parameters(src, root, top.parameters, family);
  sp.model_settings_ = parse_model_settings(src, top.model, family, sp.parameters_);
  check_reserved_names(src, root, family, sp.model_settings_, sp.parameters_);
  add_defaults(family, sp.parameters_, sp.model_settings_);
  check_every_config(sp, family, origin);
  return sp;
}

std::vector<Config> SearchSpace::enumerate() const {
  std::vector<Config> out;
  std::vector<std::size_t> idx(parameters_.size(), 0);
  while (true) {
    Config c = json::object();
    for (std::size_t i = 0; i < parameters_.size(); ++i) {
      c[parameters_[i].name] = parameters_[i].choices[idx[i]];
    }
    out.push_back(std::move(c));
    std::size_t i = parameters_.size();
    while (i > 0) {
      --i;
      if (++idx[i] < parameters_[i].choices.size()) break;
      idx[i] = 0;
      if (i == 0) return out;
    }
    if (parameters_.empty()) return out;
  }
}

std::size_t SearchSpace::size() const {
  std::size_t n = 1;
  for (const auto& p : parameters_) n *= p.choices.size();
  return n;
}

Config SearchSpace::validate(const json& params) const {
  std::string names;
  for (const auto& p : parameters_) names += (names.empty() ? "" : ", ") + p.name;
  if (!params.is_object()) {
    throw InvalidInput("parameters for search space '" + name_ +
                       "' must be a JSON object such as " + enumerate().front().dump() + ", got " +
                       params.dump());
  }
  for (const auto& [key, value] : params.items()) {
    bool known = false;
    for (const auto& p : parameters_) known = known || p.name == key;
    if (!known) {
      throw InvalidInput("unknown parameter '" + key + "' (value " + value.dump() +
                         ") for search space '" + name_ + "'; its parameters are: " + names +
                         (key == "_dataproxy" ? " (strip the reserved key _dataproxy first)" : ""));
    }
  }
  Config out = json::object();
  for (const auto& p : parameters_) {
    if (!params.contains(p.name)) {
      throw InvalidInput("missing parameter '" + p.name + "' for search space '" + name_ +
                         "'; give one of " + choices_text(p.choices) + " (got " + params.dump() +
                         ")");
    }
    const json& v = params.at(p.name);
    const json* match = nullptr;
    for (const auto& c : p.choices) {
      if (same_choice(c, v)) match = &c;
    }
    if (match == nullptr) {
      throw InvalidInput("parameter " + p.name + " = " + v.dump() +
                         " is not in the domain of search space '" + name_ +
                         "'; allowed choices: " + choices_text(p.choices));
    }
    out[p.name] = *match;
  }
  return out;
}

json SearchSpace::resolve(const Config& config, const std::string& param) const {
  for (const auto& p : parameters_) {
    if (p.name != param) continue;
    if (!config.is_object() || !config.contains(param)) {
      throw InvalidInput("configuration " + config.dump() + " has no value for parameter '" +
                         param + "' of search space '" + name_ + "'; validate it first");
    }
    const json& v = config.at(param);
    if (v.is_string()) {
      if (!p.values.contains(v.get<std::string>())) {
        throw InvalidInput("parameter " + param + " = " + v.dump() + " is not one of " +
                           choices_text(p.choices) + " in search space '" + name_ + "'");
      }
      return p.values.at(v.get<std::string>());
    }
    return v;
  }
  throw InvalidInput("search space '" + name_ + "' has no parameter '" + param + "'");
}

json SearchSpace::setting(const Config& config, const std::string& key) const {
  for (const auto& p : parameters_) {
    if (p.name == key) return resolve(config, key);
  }
  if (model_settings_.contains(key)) return model_settings_.at(key);
  throw InvalidInput("family " + family_ + " (search space '" + name_ + "') has no setting '" +
                     key + "'");
}

std::string SearchSpace::config_id(const Config& config) const {
  std::string out;
  for (const auto& p : parameters_) {
    if (!config.is_object() || !config.contains(p.name)) {
      throw InvalidInput("configuration " + config.dump() + " has no value for parameter '" +
                         p.name + "'; validate it first");
    }
    const json& v = config.at(p.name);
    out += out.empty() ? "" : "_";
    out += v.is_string() ? v.get<std::string>() : p.name + number_text(v);
  }
  return out;
}

json SearchSpace::to_nni() const {
  json out = json::object();
  for (const auto& p : parameters_) out[p.name] = {{"_type", "choice"}, {"_value", p.choices}};
  return out;
}

json SearchSpace::to_optuna() const {
  json out = json::object();
  for (const auto& p : parameters_) {
    out[p.name] = {{"name", "CategoricalDistribution"}, {"attributes", {{"choices", p.choices}}}};
  }
  return out;
}

json SearchSpace::to_json() const {
  json params = json::array();
  for (const auto& p : parameters_) {
    params.push_back({{"name", p.name},
                      {"choices", p.choices},
                      {"values", p.values},
                      {"description", p.description}});
  }
  json out = {
      {"name", name_},        {"family", family_},        {"notes", notes_},
      {"parameters", params}, {"model", model_settings_}, {"training", training_.to_json()}};
  // The module's hash, not its path: a changed network changes proxy cache keys.
  if (family_ == "torchscript") {
    out["torchscript"] = {{"module", torchscript_.module.filename().string()},
                          {"module_sha256", torchscript_.module_sha256},
                          {"function", torchscript_.function},
                          {"seed", torchscript_.seed}};
  }
  return out;
}

std::string SearchSpace::content_hash() const {
  json j = to_json();
  j.erase("notes");
  for (auto& p : j["parameters"]) p.erase("description");
  return sha256_hex(j.dump());
}

}  // namespace dataproxy
