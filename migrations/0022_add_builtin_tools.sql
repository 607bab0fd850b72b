-- Built-in tools (`web_fetch`): their steps say stewrd made them itself.
ALTER TABLE run_steps
    DROP CONSTRAINT IF EXISTS run_steps_executor_check,
    ADD CONSTRAINT run_steps_executor_check
        CHECK (executor IN ('server', 'client', 'mcp', 'builtin'));
