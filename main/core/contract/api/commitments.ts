/** GET /api/commitments: Storage Commitment transactions still open, per requesting modality (calling AE). */
import { z } from 'zod';

export const openCommitmentsSchema = z.object({
  modalities: z.array(z.object({
    callingAe: z.string(),
    /** Transactions not yet reported. */
    transactions: z.number().int(),
    /** Instances they ask about. */
    instances: z.number().int(),
    /** When the oldest of them was asked (epoch ms). */
    oldestReceivedAt: z.number(),
  })),
});
export type OpenCommitments = z.infer<typeof openCommitmentsSchema>;
