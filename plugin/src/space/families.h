// The settings each model family understands, with their types, limits and defaults. The search
// space parser checks parameters and `model:` values against these tables.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace dataproxy::space {

using json = nlohmann::json;

/// One setting of a model family.
struct SettingSpec {
  /// Any: a value of an open family (torchscript), passed to the user's builder as is.
  enum class Kind { Int, IntList, Float, Any };
  std::string name;
  Kind kind = Kind::Int;
  json default_value;
  double min = 0;       ///< smallest allowed number (each entry for lists)
  double max = 1e9;     ///< largest allowed number
  bool odd = false;     ///< kernel sizes: odd so that "same" padding is symmetric
  std::string meaning;  ///< one line, used in error messages and the CLI summary
};

/// A model family: its settings and the checks that involve several settings at once.
struct Family {
  std::string name;
  std::vector<SettingSpec> settings;
  /// Empty when the complete settings of one configuration are consistent, else what is wrong.
  std::string (*check)(const json& settings) = nullptr;
  /// Open families take settings of any name and value (the user's builder reads them).
  bool open = false;
};

/// The known families ("resnet", "efficientnet", "torchscript"); nullptr for another name.
const Family* find_family(const std::string& name);
/// Comma-separated names of the known families.
std::string family_names();
/// The spec of `setting` in `family`; nullptr when the family has no such setting. An open
/// family answers every name with a spec of kind Any.
const SettingSpec* find_setting(const Family& family, const std::string& setting);
/// Empty when `value` fits `spec`, else what is wrong with it (e.g. "expected an odd integer").
std::string check_value(const SettingSpec& spec, const json& value);

}  // namespace dataproxy::space
