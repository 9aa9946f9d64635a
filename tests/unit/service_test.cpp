// Service<Req, Resp> in one process (server on a thread): calls and
// replies, typed values, timeouts, close, and every bad input with its
// exact error. tests/ipc/service_ipc_test.cpp has the multi-process cases.
#include <catch2/catch.hpp>

#include <string>
#include <thread>

#include "sleet/channel.hpp"
#include "sleet/registry.hpp"
#include "sleet/service.hpp"
#include "support.hpp"

namespace {

using namespace std::chrono_literals;
using sleet::errc;
using sleet::Request;
using sleet::Service;
using sleet::test::Cleanup;
using sleet::test::unique_name;

}  // namespace

TEST_CASE("service: call and reply, each reply to its caller", "[service]") {
  Cleanup c(unique_name("svc"));
  auto server = Service<std::string, std::int64_t>::create(c.name);
  std::thread t([&] { server.serve([](const std::string& s) { return static_cast<std::int64_t>(s.size()); }); });
  auto a = Service<std::string, std::int64_t>::open(c.name);
  auto b = Service<std::string, std::int64_t>::open(c.name);
  REQUIRE(a.wait_for_server(5s));
  for (int i = 0; i < 100; ++i) {
    CHECK(a.call(std::string(i, 'a')) == i);
    CHECK(b.call_for(std::string(2 * i, 'b'), 5s) == 2 * i);
  }
  const auto st = server.stats();
  CHECK(st.served == 200);
  CHECK(st.clients == 2);
  CHECK(st.dropped_replies == 0);
  CHECK(st.server_alive);
  server.close();
  t.join();
  CHECK_SLEET_ERROR(a.call("x"), errc::closed, "service '" + c.name + "'");
}

TEST_CASE("service: receive_request and reply; a late reply is dropped by its caller", "[service]") {
  Cleanup c(unique_name("svc-manual"));
  auto server = Service<int, int>::create(c.name);
  auto client = Service<int, int>::open(c.name);
  CHECK_FALSE(server.try_receive_request().has_value());  // takes the server role
  CHECK_FALSE(client.call_for(1, 20ms).has_value());      // nobody answers in time
  auto r1 = server.receive_request();
  CHECK(*r1 == 1);
  server.reply(r1, 100);  // too late: the client gave up on call 1
  std::thread t([&] {
    auto r2 = server.receive_request();
    server.reply(r2, *r2 * 10);
  });
  CHECK(client.call(7) == 70);  // not the stale 100
  t.join();
}

TEST_CASE("service: bad input is a clear error naming the service", "[service][bad-input]") {
  Cleanup c(unique_name("svc-bad"));
  auto server = Service<int, int>::create(c.name);
  auto client = Service<int, int>::open(c.name);
  CHECK_SLEET_ERROR(client.call(1), errc::peer_dead, "service '" + c.name + "': no server");

  Request<int> never;
  CHECK_SLEET_ERROR(server.reply(never, 1), errc::invalid_argument, "did not receive");
  server.listen();  // the role is taken before the caller starts: no race with its peer_dead check
  std::thread t([&] { (void)client.call_for(5, 5s); });
  std::optional<Request<int>> r;
  while (!(r = server.receive_request_for(10ms))) {
  }
  server.reply(*r, 50);
  CHECK_SLEET_ERROR(server.reply(*r, 51), errc::invalid_argument, "already answered");
  t.join();

  auto second = Service<int, int>::open(c.name);
  CHECK_SLEET_ERROR(second.try_receive_request(), errc::busy, "server");

  CHECK_SLEET_ERROR((Service<int, double>::open(c.name)), errc::type_mismatch, "double");
  CHECK_SLEET_ERROR(sleet::Channel<int>::open(c.name), errc::kind_mismatch, "service");
  CHECK_SLEET_ERROR((Service<int, int>::create(c.name)), errc::already_exists, c.name);
  CHECK_SLEET_ERROR((Service<int, int>::create(std::string(190, 'x'))), errc::invalid_name, "at most");
  CHECK_SLEET_ERROR((Service<int, int>::create(unique_name("svc-bad2"), {.reply_capacity = 0})),
                    errc::invalid_argument, "reply_capacity 0");

  Cleanup s(unique_name("svc-str"));
  auto strings = Service<std::string, std::string>::create(s.name, {.max_request_size = 16});
  auto sc = Service<std::string, std::string>::open(s.name);
  strings.listen();  // a server exists, so the size is what fails
  CHECK_SLEET_ERROR(sc.call(std::string(100, 'z')), errc::too_large, "service '" + s.name + "'");

  const sleet::ObjectInfo info = sleet::inspect_object(c.name);
  CHECK(info.kind == "service");
  CHECK(info.problem.empty());
  REQUIRE(info.rings.size() == 1);
  CHECK(info.rings[0].direction == "requests");
}

TEST_CASE("service: remove() takes the reply channels a crashed client left behind", "[service]") {
  Cleanup c(unique_name("svc-rm"));
  auto server = Service<int, int>::create(c.name);
  server.listen();  // callers see a server from now on
  CHECK(server.stats().server_alive);
  std::thread t([&] { server.serve([](const int& v) { return -v; }); });
  auto client = std::make_unique<Service<int, int>>(Service<int, int>::open(c.name));
  CHECK(client->call(3) == -3);
  const std::string reply = c.name + ".reply.0";
  CHECK(sleet::test::shm_exists(reply));
  server.close();
  t.join();
  CHECK(Service<int, int>::remove(c.name));
  CHECK_FALSE(sleet::test::shm_exists(reply));
  CHECK_FALSE(sleet::test::shm_exists(c.name));
  client.reset();  // its own removal finds nothing left: no error
}
