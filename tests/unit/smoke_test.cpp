#include <catch2/catch.hpp>
#include <sleet/sleet.hpp>

TEST_CASE("smoke") {
  for (auto topo : {sleet::Topology::spsc, sleet::Topology::mpmc}) {
    sleet::Channel<int>::remove("smoke");
    auto ch = sleet::Channel<int>::create("smoke", {.topology = topo, .capacity = 4});
    auto rx = sleet::Channel<int>::open("smoke");
    CHECK(ch.try_send(1));
    ch.send(2);
    CHECK(rx.receive() == 1);
    CHECK(rx.try_receive() == 2);
    CHECK(!rx.try_receive());
    for (int i = 0; i < 100; ++i) { ch.send(i); CHECK(rx.receive() == i); }
    sleet::Channel<int>::remove("smoke");
  }
}
