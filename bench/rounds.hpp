// bench/rounds.hpp — what a comparison benchmark needs around Google
// Benchmark: comparisons of a baseline row and a sleet row, run in rounds
// back to back (A B A B ...), the ratios of those rows per round, and the
// markdown table of targets that tools/summary.py reads.
//
//   std::vector<sleet_bench::Comparison> comparisons() {
//     return {{"what is compared", {"BM_X_Case/baseline", BM_Base, true},
//              {"BM_X_Case/sleet", BM_Sleet, true}, 1.5}};   // goal: ratio <= 1.5
//   }
//   int main(int argc, char** argv) { return sleet_bench::rounds_main(argc, argv, "x_bench", comparisons()); }
//
// Rounds. Every round registers each comparison's baseline and sleet rows
// back to back, as "<row>/round:<k>"; a row that several comparisons share
// runs once per round. A ratio is sleet / baseline in each round in which
// both ran; the table shows the median of those ratios and their range, so
// one noisy round moves neither the verdict nor the number much.
//
// Flags (taken out before benchmark::Initialize, the rest is Google
// Benchmark's):
//   --quick            fewer rounds (3), short runs
//   --rounds=N         rounds (default 7, quick 3)
//   --table-out=PATH   also write the table as markdown to PATH
//   --no-pin           let the scheduler place the workers (settings().pin)
//
// The table: a header (CPU, kernel, compiler, run), "### Targets" (columns
// target, sleet, baseline, ratio, goal, result; tools/summary.py parses
// it), then "### All comparisons".
#pragma once

#include <benchmark/benchmark.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "harness.hpp"

namespace sleet_bench {

struct Settings {
  bool quick = false;
  bool pin = true;
  int rounds = 0;  // 0 until rounds_main() has read the flags
  std::string table_out;
};
inline Settings& settings() {
  static Settings s;
  return s;
}

// One Google Benchmark row. manual_time: the row reports its own time
// (SetIterationTime), otherwise real time.
struct Row {
  std::string name;
  std::function<void(benchmark::State&)> fn;
  bool manual_time;
};

// One comparison: the baseline first, then sleet, run back to back.
struct Comparison {
  std::string what;
  Row baseline;
  Row sleet;
  double goal = 0;  // the ratio (sleet time / baseline time) must stay at or below it; 0: no goal
};

// Batches of n = the iterations Google Benchmark asks for; batch(n) returns
// the seconds they took. A failure is a skipped run, not a crash.
template <class Batch>
void run_batches(benchmark::State& state, Batch&& batch) {
  const auto n = static_cast<std::int64_t>(state.max_iterations);
  try {
    while (state.KeepRunningBatch(n)) state.SetIterationTime(batch(n));
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// ------------------------------------------------------------ results

struct Results {
  std::map<std::string, std::map<int, double>> ns;  // row -> round -> ns per op
  std::map<std::string, std::string> errors;
};
inline Results& results() {
  static Results r;
  return r;
}

class CollectingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.run_type != Run::RT_Iteration) continue;
      std::string name = r.run_name.function_name;
      int round = 0;
      if (const auto pos = name.rfind("/round:"); pos != std::string::npos) {
        round = std::atoi(name.c_str() + pos + 7);
        name.resize(pos);
      }
      if (r.error_occurred) {
        results().errors[name] = r.error_message;
      } else if (r.iterations > 0) {
        results().ns[name][round] = r.real_accumulated_time / static_cast<double>(r.iterations) * 1e9;
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

inline double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}

inline std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

inline std::string ns_of(const std::string& row) {
  const Results& res = results();
  if (const auto e = res.errors.find(row); e != res.errors.end()) return "error: " + e->second;
  const auto it = res.ns.find(row);
  if (it == res.ns.end()) return "n/a";
  std::vector<double> v;
  for (const auto& [round, ns] : it->second) v.push_back(ns);
  return fmt("%.1f ns", median(v));
}

// sleet / baseline, one per round in which both ran.
inline std::vector<double> ratios(const std::string& sleet_row, const std::string& base_row) {
  const Results& res = results();
  const auto a = res.ns.find(sleet_row), b = res.ns.find(base_row);
  std::vector<double> r;
  if (a == res.ns.end() || b == res.ns.end()) return r;
  for (const auto& [round, ns] : a->second) {
    const auto it = b->second.find(round);
    if (it != b->second.end() && it->second > 0) r.push_back(ns / it->second);
  }
  return r;
}

// sleet / baseline per round: median and range.
inline std::string ratio_of(const std::string& sleet_row, const std::string& base_row) {
  const std::vector<double> r = ratios(sleet_row, base_row);
  if (r.empty()) return "n/a";
  auto x = [](double v) { return fmt(v < 0.1 ? "%.3f" : "%.2f", v); };  // 0.004x, not 0.00x
  return x(median(r)) + "x (" + std::to_string(r.size()) + " rounds, " + x(*std::min_element(r.begin(), r.end())) +
         "-" + x(*std::max_element(r.begin(), r.end())) + ")";
}

inline std::string make_table(const std::string& suite, const std::vector<Comparison>& comparisons) {
  const Settings& s = settings();
  const MachineInfo m = machine_info();
  std::ostringstream o;
  utsname u{};
  ::uname(&u);
  o << "## sleet " << suite << ": ratios\n\n| | |\n|---|---|\n";
  o << "| CPU | " << m.cpu << ", " << m.cpus << " usable CPUs |\n";
  o << "| kernel | " << u.sysname << " " << u.release << " " << u.machine << " |\n";
  o << "| compiler | " << m.compiler << " |\n";
  o << "| run | " << (s.quick ? "--quick" : "full") << ", " << s.rounds
    << " rounds (baseline and sleet back to back), workers "
    << (s.pin ? "pinned to distinct CPUs" : "not pinned") << " |\n\n";
  o << "Time per operation (lower is better); ratio = sleet / baseline, the median of the per-round "
       "ratios with their range: below 1.00x sleet is faster.\n\n";
  // tools/summary.py reads this table (columns target, ratio, goal, result).
  o << "### Targets\n\n| target | sleet | baseline | ratio | goal | result |\n|---|---|---|---|---|---|\n";
  for (const Comparison& c : comparisons) {
    if (c.goal <= 0) continue;
    const std::vector<double> r = ratios(c.sleet.name, c.baseline.name);
    std::string result = "n/a";
    if (!r.empty()) {
      const double med = median(r);
      result = med <= c.goal ? "**PASS** (" + fmt("%.2f", c.goal / med) + "x margin)"
                             : "**MISS** (" + fmt("%.2f", med / c.goal) + "x over)";
    }
    o << "| " << c.what << " | " << ns_of(c.sleet.name) << " | " << ns_of(c.baseline.name) << " | "
      << ratio_of(c.sleet.name, c.baseline.name) << " | ≤ " << fmt("%.2f", c.goal) << "x | " << result << " |\n";
  }
  o << "\n### All comparisons\n\n";
  o << "| comparison | sleet | baseline | ratio |\n|---|---|---|---|\n";
  for (const Comparison& c : comparisons) {
    o << "| " << c.what << " | " << ns_of(c.sleet.name) << " | " << ns_of(c.baseline.name) << " | "
      << ratio_of(c.sleet.name, c.baseline.name) << " |\n";
  }
  return o.str();
}

inline bool starts_with(const char* s, const char* prefix) { return std::strncmp(s, prefix, std::strlen(prefix)) == 0; }

// Reads the flags, runs every comparison's rows in rounds, prints the table
// (and writes it to --table-out). Returns main()'s exit status.
inline int rounds_main(int argc, char** argv, const std::string& suite, const std::vector<Comparison>& comparisons) {
  Settings& s = settings();
  std::vector<char*> args{argv[0]};
  bool user_min_time = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      s.quick = true;
    } else if (std::strcmp(argv[i], "--no-pin") == 0) {
      s.pin = false;
    } else if (starts_with(argv[i], "--rounds=")) {
      s.rounds = std::max(1, std::atoi(argv[i] + 9));
    } else if (starts_with(argv[i], "--table-out=")) {
      s.table_out = argv[i] + 12;
    } else {
      user_min_time = user_min_time || starts_with(argv[i], "--benchmark_min_time=");
      args.push_back(argv[i]);
    }
  }
  if (s.rounds == 0) s.rounds = s.quick ? 3 : 7;
  std::string min_time = std::string("--benchmark_min_time=") + (s.quick ? "0.02" : "0.2");
  if (!user_min_time) args.push_back(min_time.data());
  int bargc = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&bargc, args.data());
  if (benchmark::ReportUnrecognizedArguments(bargc, args.data())) return 1;

  // Rounds: every comparison's baseline and sleet rows back to back; a row
  // shared by two comparisons runs once per round.
  for (int round = 0; round < s.rounds; ++round) {
    std::vector<std::string> added;
    for (const Comparison& c : comparisons) {
      for (const Row* r : {&c.baseline, &c.sleet}) {
        if (std::find(added.begin(), added.end(), r->name) != added.end()) continue;
        added.push_back(r->name);
        auto* b = benchmark::RegisterBenchmark((r->name + "/round:" + std::to_string(round)).c_str(),
                                               [fn = r->fn](benchmark::State& st) { fn(st); });
        b->Unit(benchmark::kNanosecond);
        if (r->manual_time) {
          b->UseManualTime();
        } else {
          b->UseRealTime();
        }
      }
    }
  }
  CollectingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const std::string table = make_table(suite, comparisons);
  std::printf("\n%s", table.c_str());
  if (!s.table_out.empty()) {
    std::ofstream out(s.table_out);
    out << table;
    if (!out) {
      std::fprintf(stderr, "%s: cannot write %s\n", suite.c_str(), s.table_out.c_str());
      return 1;
    }
  }
  benchmark::Shutdown();
  return 0;
}

}  // namespace sleet_bench
