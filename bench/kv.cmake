# kv_bench: KvStore against std::unordered_map + std::shared_mutex, a
# Boost.Interprocess map in shared memory and LMDB on tmpfs. Included from
# bench/CMakeLists.txt:
#
#   include(${CMAKE_CURRENT_SOURCE_DIR}/kv.cmake)
#
# Boost (headers only) and LMDB are optional: without one the suite still
# builds and prints a note in place of its rows.
find_package(benchmark REQUIRED)

add_executable(kv_bench ${CMAKE_CURRENT_LIST_DIR}/kv_bench.cpp)
target_link_libraries(kv_bench PRIVATE sleet::sleet benchmark::benchmark)
target_compile_options(kv_bench PRIVATE -Wall -Wextra)

find_path(SLEET_BOOST_INTERPROCESS_INCLUDE_DIR boost/interprocess/managed_shared_memory.hpp)
find_path(SLEET_BOOST_UNORDERED_INCLUDE_DIR boost/unordered_map.hpp)
if(SLEET_BOOST_INTERPROCESS_INCLUDE_DIR AND SLEET_BOOST_UNORDERED_INCLUDE_DIR)
  target_include_directories(kv_bench SYSTEM PRIVATE ${SLEET_BOOST_INTERPROCESS_INCLUDE_DIR})
  target_compile_definitions(kv_bench PRIVATE SLEET_HAVE_BOOST=1)
else()
  message(STATUS "sleet kv_bench: Boost.Interprocess/Boost.Unordered headers not found; "
                 "the Boost baseline rows are skipped")
  target_compile_definitions(kv_bench PRIVATE SLEET_HAVE_BOOST=0)
endif()

find_path(SLEET_LMDB_INCLUDE_DIR lmdb.h)
find_library(SLEET_LMDB_LIBRARY lmdb)
if(SLEET_LMDB_INCLUDE_DIR AND SLEET_LMDB_LIBRARY)
  target_include_directories(kv_bench SYSTEM PRIVATE ${SLEET_LMDB_INCLUDE_DIR})
  target_link_libraries(kv_bench PRIVATE ${SLEET_LMDB_LIBRARY})
  target_compile_definitions(kv_bench PRIVATE SLEET_HAVE_LMDB=1)
else()
  message(STATUS "sleet kv_bench: lmdb.h / liblmdb not found; the LMDB baseline rows are skipped")
  target_compile_definitions(kv_bench PRIVATE SLEET_HAVE_LMDB=0)
endif()
