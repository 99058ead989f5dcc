/* The split cases of cases/core, run on the protocols of split_protocols.h:
 * linked against protogen::core alone, no loop, no thread. */
#include "split_protocols.h"

int main(int argc, char **argv)
{
    return split_main(argc, argv, split_core_protocols, split_core_n_protocols);
}
