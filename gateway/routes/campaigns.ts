import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import {
  campaignVersions, changeStatus, createCampaign, getCampaign, listCampaigns, normalizeCampaign, updateCampaign,
} from '../domain/campaigns.js';
import type { Deps } from '../domain/deps.js';
import { CampaignDefinition, CampaignInput, CampaignVersionView, CampaignView } from '../http/campaign-schema.js';
import { merchantScope } from '../http/access.js';
import { IdParams, Strict, Uuid, errors } from '../http/schemas.js';

const campaigns: FastifyPluginAsyncTypebox<{ deps: Deps }> = async (app, { deps }) => {
  const validDays = deps.config.couponValidDays;
  const tags = ['campaigns'];

  app.post('/campaigns', {
    config: { access: { roles: ['administrator', 'marketer'], scope: { kind: 'store', from: 'body.storeId' } } },
    schema: { tags, summary: 'Create an active campaign with one coupon offer', body: CampaignInput, response: { 201: CampaignView, ...errors(404) } },
  }, async (req, reply) => reply.code(201).send(await createCampaign(deps.db, req.body, validDays, merchantScope(req))));

  app.post('/campaigns/validate', {
    config: { access: { roles: ['administrator', 'marketer'], scope: { kind: 'store', from: 'body.storeId' } } },
    schema: {
      tags,
      summary: 'Validate a campaign without saving it (dry run); returns it as it would be stored',
      body: CampaignInput,
      response: { 200: Type.Object({ valid: Type.Literal(true), name: Type.String(), definition: CampaignDefinition }), ...errors(404) },
    },
  }, async (req) => {
    const n = await normalizeCampaign(deps.db, req.body, validDays, merchantScope(req));
    return { valid: true as const, name: n.name, definition: n.definition };
  });

  app.get('/campaigns', {
    config: { access: { roles: ['administrator', 'marketer'], scope: 'own' } },
    schema: {
      tags,
      summary: 'Campaigns, newest first',
      querystring: Strict({
        status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('paused'), Type.Literal('archived')])),
        storeId: Type.Optional(Uuid),
      }),
      response: { 200: Type.Object({ campaigns: Type.Array(CampaignView) }) },
    },
  }, async (req) => ({ campaigns: await listCampaigns(deps.db, { ...req.query, merchantId: merchantScope(req) }) }));

  app.get('/campaigns/:id', {
    config: { access: { roles: ['administrator', 'marketer'], scope: { kind: 'campaign', from: 'params.id' } } },
    schema: {
      tags,
      summary: 'A campaign at its current version, with every version it has had',
      params: IdParams,
      response: { 200: Type.Intersect([CampaignView, Type.Object({ versions: Type.Array(CampaignVersionView) })]), ...errors(404) },
    },
  }, async (req) => ({ ...(await getCampaign(deps.db, req.params.id)), versions: await campaignVersions(deps.db, req.params.id) }));

  app.put('/campaigns/:id', {
    config: { access: { roles: ['administrator', 'marketer'], scope: [{ kind: 'campaign', from: 'params.id' }, { kind: 'store', from: 'body.storeId' }] } },
    schema: {
      tags,
      summary: 'Edit a campaign: the whole campaign as it should be; makes a new version',
      params: IdParams,
      body: CampaignInput,
      response: { 200: CampaignView, ...errors(404, 409) },
    },
  }, async (req) => updateCampaign(deps.db, req.params.id, req.body, validDays));

  for (const action of ['pause', 'resume', 'archive'] as const) {
    app.post(`/campaigns/:id/${action}`, {
      config: { access: { roles: ['administrator', 'marketer'], scope: { kind: 'campaign', from: 'params.id' } } },
      schema: { tags, summary: `${action[0]!.toUpperCase()}${action.slice(1)} a campaign`, params: IdParams, response: { 200: CampaignView, ...errors(404, 409) } },
    }, async (req) => changeStatus(deps.db, req.params.id, action));
  }
};

export default campaigns;
