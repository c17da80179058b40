#include "train/epoch_metrics.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"

namespace garmentnet {
using nlohmann::json;

double HeadMetrics::score() const {
  if (softmax) return softmax->top1_accuracy;
  if (multilabel) return multilabel->mean_average_precision;
  fail_internal("head metrics of no kind");
}

json HeadMetrics::to_json() const {
  json out = softmax ? softmax->to_json() : multilabel->to_json();
  out["loss"] = loss;
  return out;
}

HeadMetrics HeadMetrics::from_json(const json& j) {
  HeadMetrics h;
  h.loss = j.at("loss").get<double>();
  if (j.contains("top1_accuracy")) {
    h.softmax = SoftmaxMetrics::from_json(j);
  } else {
    h.multilabel = MultiLabelMetrics::from_json(j);
  }
  return h;
}

const HeadMetrics& SplitMetrics::head(const std::string& name) const {
  const auto found = heads.find(name);
  if (found == heads.end()) fail_internal("no metrics for head '{}'", name);
  return found->second;
}

json SplitMetrics::to_json() const {
  json head_list = json::object();
  for (const auto& [name, metrics] : heads) head_list[name] = metrics.to_json();
  return {{"loss", loss}, {"score", score}, {"heads", head_list}};
}

SplitMetrics SplitMetrics::from_json(const json& j) {
  SplitMetrics s;
  s.loss = j.at("loss").get<double>();
  s.score = j.at("score").get<double>();
  for (const auto& [name, metrics] : j.at("heads").items())
    s.heads.emplace(name, HeadMetrics::from_json(metrics));
  return s;
}

SplitMetrics score_split(const TaskSpec& spec, const SplitPredictions& predictions,
                         const LossTotals& losses,
                         std::map<std::string, std::vector<double>>& thresholds, bool tune) {
  const auto mean = [&](double sum) {
    return losses.rows ? sum / static_cast<double>(losses.rows) : 0.0;
  };
  SplitMetrics out;
  out.loss = mean(losses.total);
  double score_sum = 0;
  for (const auto& head : spec.heads) {
    HeadMetrics h;
    h.loss = mean(losses.per_head.at(head.name));
    const auto& probs = predictions.probabilities.at(head.name);
    const auto& labels = predictions.labels.at(head.name);
    if (head.kind == HeadKind::Softmax) {
      h.softmax = softmax_metrics(probs, labels, head.classes);
    } else {
      std::vector<double> t(head.num_outputs(), kDefaultTagThreshold);
      if (tune) {
        t.clear();
        for (const auto& tuned : tune_tag_thresholds(probs, labels, head.classes))
          t.push_back(tuned.threshold);
        thresholds[head.name] = t;
      } else if (thresholds.count(head.name)) {
        t = thresholds.at(head.name);
      }
      h.multilabel = multilabel_metrics(probs, labels, head.classes, t);
    }
    score_sum += h.score();
    out.heads.emplace(head.name, std::move(h));
  }
  out.score = score_sum / static_cast<double>(spec.heads.size());
  return out;
}

json EpochRecord::to_json() const {
  return {{"epoch", epoch},           {"lr_factor", lr_factor},
          {"seconds", seconds},       {"train_seconds", train_seconds},
          {"train", train.to_json()}, {"val", validation.to_json()}};
}

EpochRecord EpochRecord::from_json(const json& j) {
  return {.epoch = j.at("epoch").get<int>(),
          .lr_factor = j.at("lr_factor").get<double>(),
          .seconds = j.at("seconds").get<double>(),
          .train_seconds = j.value("train_seconds", 0.0),
          .train = SplitMetrics::from_json(j.at("train")),
          .validation = SplitMetrics::from_json(j.at("val"))};
}

json history_to_json(const TrainingHistory& history) {
  json out = json::array();
  for (const EpochRecord& record : history) out.push_back(record.to_json());
  return out;
}

TrainingHistory history_from_json(const json& j) {
  TrainingHistory history;
  for (const json& entry : j) history.push_back(EpochRecord::from_json(entry));
  return history;
}

void write_metrics_files(const std::filesystem::path& out, const TaskSpec& spec,
                         const TrainingHistory& history) {
  write_file_atomically(out / "metrics.json", history_to_json(history).dump(2));
  std::string csv = "epoch,seconds,lr_factor,train_loss,val_loss,val_score";
  for (const auto& head : spec.heads) {
    if (head.kind == HeadKind::Softmax) {
      csv += fmt::format(",train_{0}_top1,val_{0}_top1,val_{0}_top2,val_{0}_macro_f1", head.name);
    } else {
      csv += fmt::format(",train_{0}_map,val_{0}_map,val_{0}_macro_f1", head.name);
    }
  }
  csv += '\n';
  // A run without validation rows leaves the validation columns empty.
  const auto figure = [](bool known, double value) {
    return known ? fmt::format(",{:.5f}", value) : std::string(",");
  };
  for (const EpochRecord& e : history) {
    const bool validated = !e.validation.heads.empty();
    csv += fmt::format("{},{:.1f},{:.4f},{:.5f}", e.epoch, e.seconds, e.lr_factor, e.train.loss) +
           figure(validated, e.validation.loss) + figure(validated, e.validation.score);
    for (const auto& head : spec.heads) {
      const HeadMetrics& t = e.train.head(head.name);
      const HeadMetrics& v = validated ? e.validation.head(head.name) : t;  // t: never printed
      if (head.kind == HeadKind::Softmax) {
        csv += fmt::format(",{:.5f}", t.softmax->top1_accuracy) +
               figure(validated, v.softmax->top1_accuracy) +
               figure(validated, v.softmax->top2_accuracy) + figure(validated, v.softmax->macro_f1);
      } else {
        csv += fmt::format(",{:.5f}", t.multilabel->mean_average_precision) +
               figure(validated, v.multilabel->mean_average_precision) +
               figure(validated, v.multilabel->macro_f1);
      }
    }
    csv += '\n';
  }
  write_file_atomically(out / "metrics.csv", csv);
}

std::string epoch_summary(const TaskSpec& spec, const EpochRecord& e, int epochs) {
  if (e.validation.heads.empty())
    return fmt::format("epoch {}/{}: train loss {:.4f}, train score {:.4f} (no validation rows)",
                       e.epoch, epochs, e.train.loss, e.train.score);
  std::string summary =
      fmt::format("epoch {}/{}: train loss {:.4f}, val loss {:.4f}, val score {:.4f}", e.epoch,
                  epochs, e.train.loss, e.validation.loss, e.validation.score);
  for (const auto& head : spec.heads) {
    const HeadMetrics& v = e.validation.head(head.name);
    summary += v.softmax
                   ? fmt::format(", {} top1 {:.3f} top2 {:.3f}", head.name,
                                 v.softmax->top1_accuracy, v.softmax->top2_accuracy)
                   : fmt::format(", {} mAP {:.3f} F1 {:.3f}", head.name,
                                 v.multilabel->mean_average_precision, v.multilabel->macro_f1);
  }
  return summary;
}

HeadlineFigures headline_figures(const SplitMetrics& metrics) {
  HeadlineFigures figures;
  for (const auto& [name, head] : metrics.heads) {
    if (head.softmax && !figures.top1) {
      figures.top1 = head.softmax->top1_accuracy;
      figures.top2 = head.softmax->top2_accuracy;
    }
    if (head.multilabel && !figures.tag_f1) figures.tag_f1 = head.multilabel->macro_f1;
  }
  return figures;
}

std::vector<std::pair<std::string, double>> epoch_figures(const EpochRecord& record,
                                                          size_t training_rows) {
  std::vector<std::pair<std::string, double>> out;
  for (const auto& [split, metrics] :
       {std::pair<std::string, const SplitMetrics&>{"train", record.train},
        std::pair<std::string, const SplitMetrics&>{"validation", record.validation}}) {
    if (metrics.heads.empty()) continue;  // a run without validation rows
    out.emplace_back(split + "/loss", metrics.loss);
    out.emplace_back(split + "/score", metrics.score);
    for (const auto& [name, head] : metrics.heads) {
      const std::string prefix = split + "/" + name + "/";
      out.emplace_back(prefix + "loss", head.loss);
      if (head.softmax) {
        out.emplace_back(prefix + "top1", head.softmax->top1_accuracy);
        out.emplace_back(prefix + "top2", head.softmax->top2_accuracy);
        out.emplace_back(prefix + "macro_f1", head.softmax->macro_f1);
      }
      if (head.multilabel) {
        out.emplace_back(prefix + "mAP", head.multilabel->mean_average_precision);
        out.emplace_back(prefix + "macro_f1", head.multilabel->macro_f1);
        for (const TagMetrics& tag : head.multilabel->tags)
          out.emplace_back(prefix + "f1/" + tag.name, tag.at_threshold.f1);
      }
    }
  }
  out.emplace_back("speed/epoch_seconds", record.seconds);
  if (record.train_seconds > 0)
    out.emplace_back("speed/images_per_second",
                     static_cast<double>(training_rows) / record.train_seconds);
  out.emplace_back("schedule/lr_factor", record.lr_factor);
  return out;
}

}  // namespace garmentnet
