// Service<Req, Resp> between real processes (fork): many client processes,
// every reply checked against its request; a server killed mid-call makes
// the pending call and later ones fail with errc::peer_dead; a client
// killed mid-call does not block the server.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "ipc/ipc_support.hpp"
#include "sleet/service.hpp"

namespace {

using namespace std::chrono_literals;
using sleet::errc;
using sleet::Service;
using sleet::test::Child;
using sleet::test::Cleanup;
using sleet::test::patience;
using sleet::test::Report;
using sleet::test::scaled;
using sleet::test::SharedMemory;
using sleet::test::unique_name;
using sleet::test::wait_until;

using Msg = sleet::test::SeqMsg;
using sleet::test::check_of;
using sleet::test::intact;
using sleet::test::make_msg;

// The server's answer to m: the same producer and seq, a checksum of seq + 1.
Msg answer(const Msg& m) { return Msg{m.producer, 0, m.seq, check_of(m.producer, m.seq + 1)}; }

}  // namespace

TEST_CASE("service ipc: four client processes, every reply to its caller", "[service][ipc]") {
  Cleanup c(unique_name("svci"));
  auto svc = Service<Msg, Msg>::create(c.name, {.capacity = 16});
  Child server([&] {
    auto s = Service<Msg, Msg>::open(c.name);
    s.serve([](const Msg& m) { return answer(m); });
    return 0;
  });
  const std::uint64_t n = scaled(5000, 500);
  constexpr int kClients = 4;
  SharedMemory<Report> reports(kClients);
  std::vector<Child> clients;
  for (int k = 0; k < kClients; ++k) {
    clients.emplace_back([&, k] {
      auto s = Service<Msg, Msg>::open(c.name);
      if (!s.wait_for_server(patience(5000ms))) return reports[k].fail("no server");
      for (std::uint64_t i = 0; i < n; ++i) {
        const Msg q = make_msg(static_cast<std::uint32_t>(k), i);
        const Msg r = i % 2 ? s.call(q) : *s.call_for(q, patience(5000ms));
        if (r.producer != q.producer || r.seq != q.seq || r.check != check_of(q.producer, q.seq + 1)) {
          return reports[k].fail("call %llu: wrong reply (producer %u seq %llu)",
                                 static_cast<unsigned long long>(i), r.producer,
                                 static_cast<unsigned long long>(r.seq));
        }
      }
      return 0;
    });
  }
  const auto deadline = sleet::test::Clock::now() + patience(60000ms);
  for (int k = 0; k < kClients; ++k) {
    INFO("client " << k << ": " << reports[k].what());
    CHECK(wait_until(clients[k], deadline) == 0);
  }
  svc.close();
  CHECK(wait_until(server, deadline) == 0);
  const auto st = svc.stats();
  CHECK(st.served == n * kClients);
  CHECK(st.dropped_replies == 0);
}

TEST_CASE("service ipc: a server killed mid-call fails pending and later calls with peer_dead", "[service][ipc]") {
  Cleanup c(unique_name("svci-kill"));
  auto svc = Service<int, int>::create(c.name);
  Child server([&] {
    auto s = Service<int, int>::open(c.name);
    auto r = s.receive_request();  // takes the call, then dies without answering
    (void)r;
    ::raise(SIGKILL);
    return 0;
  });
  REQUIRE(svc.wait_for_server(patience(5000ms)));
  const auto t0 = sleet::test::Clock::now();
  CHECK_SLEET_ERROR(svc.call(1), errc::peer_dead, "died");
  CHECK(sleet::test::ms_since(t0) < patience(5000ms).count());
  CHECK(server.wait_for(patience(5000ms)) == 128 + SIGKILL);
  CHECK_SLEET_ERROR(svc.call_for(2, 1s), errc::peer_dead, "service '" + c.name + "'");
  CHECK_FALSE(svc.server_alive());
  // A new server takes the dead one's role and answers.
  Child again([&] {
    auto s = Service<int, int>::open(c.name);
    s.serve([](const int& v) { return v + 1; });
    return 0;
  });
  REQUIRE(svc.wait_for_server(patience(5000ms)));
  int got = 0;
  // The request of the failed call 2 may still be queued: its answer is
  // dropped by number, and this call gets its own.
  CHECK_NOTHROW(got = svc.call(41));
  CHECK(got == 42);
  svc.close();
  CHECK(again.wait_for(patience(5000ms)) == 0);
}

TEST_CASE("service ipc: a client killed mid-call does not block the server", "[service][ipc]") {
  Cleanup c(unique_name("svci-client"));
  auto svc = Service<int, int>::create(c.name, {.reply_capacity = 1});
  SharedMemory<std::atomic<int>> sent;
  Child server([&] {
    auto s = Service<int, int>::open(c.name);
    s.serve([](const int& v) { return v * 2; });
    return 0;
  });
  REQUIRE(svc.wait_for_server(patience(5000ms)));
  // Dies right after its requests are queued, before it reads any reply.
  Child doomed([&] {
    auto s = Service<int, int>::open(c.name);
    for (int i = 0; i < 5; ++i) (void)s.call_for(i, 1ms);
    sent->store(1);
    ::raise(SIGKILL);
    return 0;
  });
  REQUIRE(sleet::test::eventually([&] { return sent->load() == 1; }, patience(5000ms)));
  CHECK(doomed.wait_for(patience(5000ms)) == 128 + SIGKILL);
  // The server goes on answering others.
  const auto t0 = sleet::test::Clock::now();
  for (int i = 0; i < 20; ++i) CHECK(svc.call_for(i, patience(5000ms)) == 2 * i);
  CHECK(sleet::test::ms_since(t0) < patience(5000ms).count());
  svc.close();
  CHECK(server.wait_for(patience(5000ms)) == 0);
  const auto st = svc.stats();
  CHECK(st.served + st.dropped_replies >= 25);
  // The killed client's reply channel is left behind; remove() takes it too.
  CHECK(Service<int, int>::remove(c.name));
  CHECK_FALSE(sleet::test::shm_exists(c.name + ".reply.0"));
  CHECK_FALSE(sleet::test::shm_exists(c.name + ".reply.1"));
}
