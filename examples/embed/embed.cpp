// The smallest C++ host: the C API wrapped in RAII handles.
//   c++ -std=c++17 embed.cpp $(pkg-config --cflags --libs agentcore) -o embed
#include <agentcore.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

namespace {

struct CoreDeleter {
    void operator()(ac_core *c) const { ac_core_close(c); }
};
using Core = std::unique_ptr<ac_core, CoreDeleter>;

struct StringDeleter {
    void operator()(char *s) const { ac_free(s); }
};
using String = std::unique_ptr<char, StringDeleter>;

void check(int rc, const char *what)
{
    if (rc != AC_OK)
        throw std::runtime_error(std::string(what) + ": " + ac_strerror(rc) + ": " + ac_errmsg());
}

Core open_core(const char *config)
{
    ac_core *raw = nullptr;
    check(ac_core_open(config, &raw), "ac_core_open");
    return Core(raw);
}

} // namespace

int main()
{
    try {
        Core core = open_core("{\"log_level\":\"info\"}");
        char *raw = nullptr;
        check(ac_core_config(core.get(), &raw), "ac_core_config");
        String config(raw);
        std::printf("libagentcore %s from C++: %s\n", ac_version(), config.get());
        try {
            open_core("{\"log_level\":\"loud\"}");
            return 1;
        } catch (const std::runtime_error &e) {
            std::printf("bad config rejected: %s\n", e.what());
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
