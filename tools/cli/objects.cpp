// sleet ls, sleet stat, sleet rm: the registry as a command.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iostream>

#include <sleet/sleet.hpp>

#include "cli.hpp"
#include "output.hpp"

namespace sleet::cli {

namespace {

const char* topology_name(Topology t) { return t == Topology::spsc ? "spsc" : "mpmc"; }

std::string pid_list(const std::vector<int>& pids, const char* separator) {
  std::string s;
  for (int pid : pids) {
    if (!s.empty()) s += separator;
    s += std::to_string(pid);
  }
  return s;
}

// The users column / line: recorded pids, "+N" for openers the table had no
// room for, "(foreign)" when the pids are another namespace's.
std::string users_of(const ObjectInfo& o, const char* separator) {
  std::string s = pid_list(o.users, separator);
  if (o.unrecorded_users != 0) {
    s += (s.empty() ? "+" : std::string(separator) + "+") + std::to_string(o.unrecorded_users);
  }
  if (o.foreign_pids && !s.empty()) s += " (foreign)";
  return s;
}

// "2024-05-01T12:00:00Z", or "" if unknown.
std::string iso_time(std::chrono::system_clock::time_point t) {
  if (t.time_since_epoch().count() == 0) return "";
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  if (::gmtime_r(&secs, &tm) == nullptr) return "";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string octal(unsigned mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode);
  return buf;
}

// The message/value type, or "" where the header's type says nothing more
// than the kind (a kv store's values each carry their own type).
std::string type_of(const ObjectInfo& o) { return o.type_name == o.kind ? "" : o.type_name; }

// live, STALE, or what is wrong with it.
std::string state_of(const ObjectInfo& o) {
  std::string s = o.stale ? "STALE" : "live";
  if (!o.problem.empty()) s += ": " + o.problem;
  return s;
}

std::uint64_t queued(const ObjectInfo& o) {
  std::uint64_t n = 0;
  for (const RingInfo& r : o.rings) n += r.stats.queued;
  return n;
}

void write_json(Json& j, const ObjectInfo& o) {
  j.begin_object();
  j.key("name").value(o.name);
  j.key("kind").value(o.kind);
  j.key("type").value(o.type_name);
  j.key("layout_version").value(std::uint64_t{o.layout_version});
  j.key("size").value(o.total_size);
  j.key("permissions").value(octal(o.permissions));
  j.key("owner_uid").value(o.owner_uid);
  const std::string created = iso_time(o.created);
  j.key("created");
  created.empty() ? j.null() : j.value(created);
  j.key("creator_pid").value(o.creator_pid);
  j.key("creator_alive").value(o.creator_alive);
  j.key("users").begin_array();
  for (int pid : o.users) j.value(pid);
  j.end_array();
  j.key("unrecorded_users").value(std::uint64_t{o.unrecorded_users});
  j.key("foreign_pids").value(o.foreign_pids);
  j.key("stale").value(o.stale);
  j.key("problem");
  o.problem.empty() ? j.null() : j.value(o.problem);
  if (!o.rings.empty()) {
    j.key("rings").begin_array();
    for (const RingInfo& r : o.rings) {
      j.begin_object();
      j.key("direction");
      r.direction.empty() ? j.null() : j.value(r.direction);
      j.key("topology").value(topology_name(r.topology));
      j.key("capacity").value(r.capacity);
      j.key("max_message_size").value(r.max_message_size);
      j.key("closed").value(r.closed);
      j.key("queued").value(r.stats.queued);
      j.key("sent").value(r.stats.sent);
      j.key("received").value(r.stats.received);
      j.key("times_full").value(r.stats.times_full);
      j.key("send_sleeps").value(r.stats.send_sleeps);
      j.key("receive_sleeps").value(r.stats.receive_sleeps);
      j.key("send_wakes").value(r.stats.send_wakes);
      j.key("receive_wakes").value(r.stats.receive_wakes);
      j.key("abandoned").value(r.stats.abandoned);
      j.key("lost").value(r.stats.lost);
      j.end_object();
    }
    j.end_array();
  }
  if (o.kv) {
    j.key("kv").begin_object();
    j.key("capacity").value(o.kv->capacity);
    j.key("slots").value(o.kv->slots);
    j.key("entries").value(o.kv->entries);
    j.key("max_key_size").value(o.kv->max_key_size);
    j.key("max_value_size").value(o.kv->max_value_size);
    j.key("overflow_bytes").value(o.kv->overflow_bytes);
    j.key("overflow_used").value(o.kv->overflow_used);
    j.key("bytes_per_entry").value(o.kv->entries ? o.total_size / o.kv->entries : 0);
    j.end_object();
  }
  for (const auto& [key, value] : o.fields) j.key(key).value(value);
  j.end_object();
}

// Does a side sleep on its futex, or only spin (or never wait)?
std::string waiting(const ChannelStats& s) {
  if (s.send_sleeps == 0 && s.receive_sleeps == 0) {
    return "no futex sleeps (every wait ended while spinning, or nobody waited)";
  }
  return "senders slept " + std::to_string(s.send_sleeps) + " times, receivers " +
         std::to_string(s.receive_sleeps) + " times";
}

void print_stat(const ObjectInfo& o) {
  Table t;
  auto line = [&](const std::string& label, const std::string& value) {
    t.add({label + ":", value});
  };
  line("name", o.name);
  line("kind", o.kind);
  if (!type_of(o).empty()) line("type", type_of(o));
  line("state", state_of(o));
  line("size", std::to_string(o.total_size) + " bytes");
  line("permissions", octal(o.permissions) + " (uid " + std::to_string(o.owner_uid) + ")");
  if (const std::string c = iso_time(o.created); !c.empty()) line("created", c);
  line("creator", "pid " + std::to_string(o.creator_pid) +
                      (o.foreign_pids ? " (another pid namespace)"
                                      : o.creator_alive ? " (alive)" : " (dead)"));
  std::string users = pid_list(o.users, ", ");
  if (o.unrecorded_users != 0) {
    users += (users.empty() ? "" : " and ") + std::to_string(o.unrecorded_users) +
             " unrecorded (openers its table had no room for, or of another pid namespace)";
  }
  if (o.foreign_pids && !users.empty()) users += " (pids of another pid namespace)";
  line("users", users.empty() ? "none alive" : users);
  if (o.layout_version != 0) line("layout", "version " + std::to_string(o.layout_version));
  for (const RingInfo& r : o.rings) {
    const std::string p = r.direction.empty() ? "" : r.direction + " ";
    line(p + "topology", topology_name(r.topology));
    line(p + "capacity", std::to_string(r.capacity) + " messages of up to " +
                             std::to_string(r.max_message_size) + " bytes");
    line(p + "closed", r.closed ? "yes" : "no");
    line(p + "queued", std::to_string(r.stats.queued));
    line(p + "sent", std::to_string(r.stats.sent));
    line(p + "received", std::to_string(r.stats.received));
    line(p + "times full", std::to_string(r.stats.times_full));
    line(p + "send sleeps", std::to_string(r.stats.send_sleeps));
    line(p + "send wakes", std::to_string(r.stats.send_wakes));
    line(p + "receive sleeps", std::to_string(r.stats.receive_sleeps));
    line(p + "receive wakes", std::to_string(r.stats.receive_wakes));
    if (r.stats.abandoned != 0 || r.stats.lost != 0) {  // mpmc slots taken back from dead processes
      line(p + "abandoned", std::to_string(r.stats.abandoned) + " (sends by processes that died before publishing)");
      line(p + "lost", std::to_string(r.stats.lost) + " (messages taken by receivers that died)");
    }
    line(p + "waiting", waiting(r.stats));
  }
  if (o.kv) {
    line("capacity", std::to_string(o.kv->capacity) + " entries (" + std::to_string(o.kv->slots) +
                         " slots)");
    // Shared memory per live key: what the table costs for what it holds.
    const std::uint64_t fill_pct = o.kv->slots ? o.kv->entries * 100 / o.kv->slots : 0;
    line("entries", std::to_string(o.kv->entries) + " (" + std::to_string(fill_pct) +
                        "% of the slots), " +
                        (o.kv->entries ? std::to_string(o.total_size / o.kv->entries) +
                                             " bytes of shared memory per live key"
                                       : std::string("no live key")));
    if (o.kv->overflow_bytes != 0) {
      line("overflow", std::to_string(o.kv->overflow_used) + " of " +
                           std::to_string(o.kv->overflow_bytes) + " bytes in use");
    }
    line("max key size", std::to_string(o.kv->max_key_size) + " bytes");
    line("max value size", std::to_string(o.kv->max_value_size) + " bytes");
  }
  for (const auto& [key, value] : o.fields) line(key, std::to_string(value));
  std::cout << t.str();
}

std::string describe(std::string_view name) {
  std::string s = "sleet segment '";
  s.append(detail::printable_name(name)).append("'");
  return s;
}

}  // namespace

int run_ls(const LsOptions& o) {
  const std::vector<ObjectInfo> all = list_objects();
  if (o.json) {
    std::string out = "[";
    for (std::size_t i = 0; i < all.size(); ++i) {
      Json j;
      write_json(j, all[i]);
      out += i == 0 ? "\n  " : ",\n  ";
      out += j.str();
    }
    out += all.empty() ? "]\n" : "\n]\n";
    std::cout << out;
    return kOk;
  }
  Table t({"NAME", "KIND", "TOPOLOGY", "TYPE", "CAPACITY", "FILL", "CREATOR", "USERS", "STATE"});
  for (const ObjectInfo& info : all) {
    std::string topology = "-", capacity = "-", fill = "-";
    if (!info.rings.empty()) {
      topology = topology_name(info.rings.front().topology);
      capacity = std::to_string(info.rings.front().capacity);
      fill = std::to_string(queued(info));
    } else if (info.kv) {
      capacity = std::to_string(info.kv->capacity);
      fill = std::to_string(info.kv->entries);
    }
    const std::string creator = std::to_string(info.creator_pid) +
                                (info.foreign_pids ? " (foreign)" : info.creator_alive ? "" : " (dead)");
    const std::string users = users_of(info, ",");
    t.add({info.name, info.kind, topology, type_of(info).empty() ? "-" : type_of(info), capacity,
           fill, creator, users.empty() ? "-" : users, state_of(info)});
  }
  std::cout << t.str();
  return kOk;
}

int run_stat(const StatOptions& o) {
  const ObjectInfo info = inspect_object(o.name);
  if (o.json) {
    Json j;
    write_json(j, info);
    std::cout << j.str() << '\n';
  } else {
    print_stat(info);
  }
  return kOk;
}

int run_rm(const RmOptions& o) {
  const int modes = !o.names.empty() + o.stale + o.all;
  if (modes != 1) throw Failure(kUsage, "rm: give NAME..., --stale or --all --yes (one of them)");
  if (o.all && !o.yes) {
    throw Failure(kUsage, "rm --all removes every sleet object; add --yes to confirm");
  }
  if (o.force && o.names.empty()) throw Failure(kUsage, "rm: --force goes with names");
  if (!o.prefix.empty() && !o.names.empty()) {
    throw Failure(kUsage, "rm: --prefix goes with --stale or --all, not with names");
  }
  std::vector<std::string> names = o.names;
  if (o.stale || o.all) {
    for (const ObjectInfo& info : list_objects()) {
      if ((o.all || info.stale) && info.name.starts_with(o.prefix)) names.push_back(info.name);
    }
  }
  // --stale and NAME without --force only remove what nobody holds open,
  // checked and unlinked under an exclusive lock.
  const RemoveWhen when = o.all || o.force ? RemoveWhen::always : RemoveWhen::unused;
  int rc = kOk;
  for (const std::string& name : names) {
    try {
      if (remove_object(name, when)) {
        std::cout << "removed " << name << '\n';
      } else if (!o.names.empty()) {  // a listed object that went away meanwhile is not an error
        std::cerr << "sleet: " << describe(name) << ": does not exist\n";
        rc = std::max(rc, kError);
      }
    } catch (const Error& e) {
      if (o.stale && e.code() == errc::busy) continue;  // opened since it was listed: not stale
      // Report it and go on with the other names.
      std::cerr << "sleet: " << e.detail()
                << (e.code() == errc::busy ? "; not removed (--force removes it anyway)" : "") << '\n';
      rc = std::max(rc, exit_code_of(e));
    }
  }
  return rc;
}

}  // namespace sleet::cli
