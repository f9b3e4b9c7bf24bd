# bp_embed_file(IN OUT ARRAY LEN): OUT, a C source with the bytes of IN as
#   const char ARRAY[] (NUL-terminated) and const size_t LEN (their count, without the NUL),
# made at configure time. OUT is written only when its text changes: `make build` (and so
# `make run`) configures every time, and a file rewritten with the same bytes was compiled
# again and relinked the library, the binary and every benchmark on each run.
function(bp_embed_file in out array len)
  file(READ ${in} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  get_filename_component(name ${in} NAME)
  file(CONFIGURE OUTPUT ${out} CONTENT
    "/* Generated from ${name} by cmake/embed.cmake. */\n#include <stddef.h>\n\
const char ${array}[] = {${hex} 0};\n\
const size_t ${len} = sizeof(${array}) - 1;\n" @ONLY)
endfunction()
