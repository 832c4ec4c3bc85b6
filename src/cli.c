/* cli: not yet written. */
#include "cli.h"
