/* config.c - being written. */
#include "cli/config.h"
