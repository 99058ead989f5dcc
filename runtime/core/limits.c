/* asyncio's _set_write_buffer_limits, shared by the stream and datagram
 * transports. */
#include "core_internal.h"

int pg__write_buffer_limits(size_t high, size_t low, size_t *out_high, size_t *out_low)
{
    if (high == PG_LIMIT_DEFAULT) {
        if (low == PG_LIMIT_DEFAULT)
            high = PG_DEFAULT_HIGH_WATER;
        else if (low > (SIZE_MAX - 1) / 4)
            return -EINVAL;
        else
            high = 4 * low;
    }
    if (low == PG_LIMIT_DEFAULT)
        low = high / 4;
    if (high < low)
        return -EINVAL;
    *out_high = high;
    *out_low = low;
    return 0;
}
