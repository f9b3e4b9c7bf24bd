/* main.c - placeholder while the CLI is written (replaced in the same session). */
#include <stdio.h>
int main(void)
{
    puts("blockpipe " BP_VERSION);
    return 0;
}
