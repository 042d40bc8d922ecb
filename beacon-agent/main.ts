// `npm run agent`: the store edge box. AGENT_CONFIG names its JSON configuration; a bad one stops it at once
// with the field named. SIGTERM or SIGINT stops scanning, flushes what it can and exits.
import { AgentConfigError, loadAgentConfig } from './config.js';
import { startAgent } from './agent.js';

try {
  const config = loadAgentConfig();
  const agent = await startAgent(config);
  console.log(JSON.stringify({ level: 'info', message: 'agent started', agentId: config.agentId, source: config.source, pending: agent.pending }));
  const stop = async (signal: string) => {
    console.log(JSON.stringify({ level: 'info', message: 'stopping', signal, pending: agent.pending }));
    await agent.stop();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
} catch (err) {
  console.error(err instanceof AgentConfigError ? err.message : `agent failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
