# Run by `cmake --install` (install(CODE) in cmake/install.cmake), where CMAKE_INSTALL_PREFIX is
# the prefix installed to: configures the systemd unit for it and installs the sample config.
set(prefix "${CMAKE_INSTALL_PREFIX}")
if(IS_ABSOLUTE "${BP_BINDIR_REL}")
  set(BP_BINDIR "${BP_BINDIR_REL}")
else()
  set(BP_BINDIR "${prefix}/${BP_BINDIR_REL}")
endif()
# As GNUInstallDirs: /usr keeps its configuration in /etc, any other prefix in PREFIX/etc.
if(prefix STREQUAL "/usr")
  set(BP_SYSCONFDIR "/etc")
else()
  set(BP_SYSCONFDIR "${prefix}/etc")
endif()
configure_file("${BP_SOURCE_DIR}/packaging/blockpipe.service.in"
               "${BP_BINARY_DIR}/blockpipe.service" @ONLY)
file(INSTALL DESTINATION "${prefix}/lib/systemd/system" TYPE FILE
     FILES "${BP_BINARY_DIR}/blockpipe.service")
if(EXISTS "$ENV{DESTDIR}${BP_SYSCONFDIR}/blockpipe/blockpipe.yaml")
  message(STATUS "Kept: $ENV{DESTDIR}${BP_SYSCONFDIR}/blockpipe/blockpipe.yaml (yours; the "
                 "sample is in share/doc/blockpipe)")
else()
  file(INSTALL DESTINATION "${BP_SYSCONFDIR}/blockpipe" TYPE FILE
       FILES "${BP_SOURCE_DIR}/packaging/blockpipe.yaml")
endif()
