# Install rules (make install PREFIX=..., or cmake --install BUILD --prefix ...):
#   bin/blockpipe, include/blockpipe/*.h, share/man/man1/blockpipe.1,
#   lib/systemd/system/blockpipe.service (made from packaging/blockpipe.service.in at install
#   time, so that it names the prefix installed to, even one given to cmake --install --prefix),
#   etc/blockpipe/blockpipe.yaml (/etc/blockpipe for the prefix /usr; never over a file that
#   is there: it is the admin's) and share/doc/blockpipe/blockpipe.yaml, the sample as shipped.
include(GNUInstallDirs)

install(TARGETS blockpipe RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/blockpipe DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/blockpipe.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES packaging/blockpipe.yaml DESTINATION ${CMAKE_INSTALL_DOCDIR})

# The hook for libblockpipe: a library target added to BP_INSTALL_LIBRARIES before this file is
# included (e.g. list(APPEND BP_INSTALL_LIBRARIES blockpipe_shared blockpipe_static)) is
# installed to lib/, and BP_PKGCONFIG_FILE (a generated blockpipe.pc) to lib/pkgconfig/.
# tests/integration/test_packaging.py checks that any libblockpipe the build made is installed.
foreach(lib IN LISTS BP_INSTALL_LIBRARIES)
  install(TARGETS ${lib} ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endforeach()
if(BP_PKGCONFIG_FILE)
  install(FILES ${BP_PKGCONFIG_FILE} DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endif()

install(CODE "
  set(BP_SOURCE_DIR \"${CMAKE_CURRENT_SOURCE_DIR}\")
  set(BP_BINARY_DIR \"${CMAKE_CURRENT_BINARY_DIR}\")
  set(BP_BINDIR_REL \"${CMAKE_INSTALL_BINDIR}\")
  include(\"${CMAKE_CURRENT_SOURCE_DIR}/cmake/install_files.cmake\")
")
