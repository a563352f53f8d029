"""Drop the two single-column ticket indexes MySQL/MariaDB databases gained while 0003 replaced the list indexes.

0003 dropped (assignee_id, status, last_activity_at) and (group_id, ...) before adding their successors with `id`:
each was its foreign key's only index at that moment, so tortoise's MySQL schema editor created `fkidx_ticket_*`
on the key column alone. The successors start with the same column and serve the foreign keys, so the extra two
only cost every ticket INSERT and every assignment two more index writes. SQLite never had them.
"""

from typing import Any

from tortoise import migrations
from tortoise.migrations import operations as ops

_REDUNDANT = ("SELECT index_name AS name FROM information_schema.statistics WHERE table_schema = DATABASE() "
              "AND table_name = 'ticket' AND LEFT(index_name, 13) = 'fkidx_ticket_' "
              "AND column_name IN ('assignee_id', 'group_id')")


async def drop_redundant(apps: Any, schema_editor: Any) -> None:
    client = schema_editor.client
    if client.capabilities.dialect != "mysql":
        return
    _, rows = await client.execute_query(_REDUNDANT)
    for row in rows:
        await client.execute_script(f"DROP INDEX `{row['name']}` ON `ticket`")


class Migration(migrations.Migration):
    dependencies = [('gongdan', '0003_console_channels_intelligence_performance')]

    initial = False

    operations = [
        ops.RunPython(drop_redundant, ops.RunPython.noop),
    ]
