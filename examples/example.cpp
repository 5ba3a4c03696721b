// The C++ example (docs/c-cpp.md): load, compile, run, with the header-only wrapper sam3_neck.hpp.
// Build against an installed copy (make install PREFIX=...):
//   c++ -std=c++17 example.cpp $(pkg-config --cflags --libs sam3neck) -o example
#include <array>
#include <iostream>
#include <vector>

#include "sam3_neck.hpp"

int main(int argc, char **argv) {
  if (argc < 2) { std::cerr << "usage: " << argv[0] << " WEIGHTS.safetensors\n"; return 2; }
  try {
    sam3neck::Neck neck = sam3neck::Neck::load(argv[1]);  // freed when `neck` goes out of scope
    sam3neck::Config config = neck.config();

    sam3neck::CompileOptions options;                     // 1 x 72 x 72, NCHW
    options.levels_mask = 0x7;                            // levels 0, 1, 2
    neck.compile(options);

    std::vector<float> input(neck.input_count());         // the trunk's features go here
    std::vector<std::vector<float>> features = neck.run(input);  // one per level, [B, d, h, w]
    for (int level = 0; level < 3; level++) {
      std::array<int64_t, 4> s = neck.level_shape(level);
      std::cout << "level " << level << ": [" << s[0] << ", " << s[1] << ", " << s[2] << ", "
                << s[3] << "], " << features[level].size() << " floats\n";
    }
    std::cout << "ran: trunk_dim " << config.trunk_dim << ", d_model " << config.d_model << "\n";
  } catch (const sam3neck::Error &e) {                    // any failed call: status and message
    std::cerr << "sam3neck: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
