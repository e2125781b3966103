import dimse from 'dcmjs-dimse';

const { RejectReason, RejectResult, RejectSource } = dimse.constants;

export interface AssociationPolicySettings {
  aeTitle: string;
  acceptAnyCalledAe: boolean;
  allowedCallingAes: readonly string[];
  maxAssociations: number;
}

export interface AssociationRequestFacts {
  calledAe: string;
  callingAe: string;
  /** Associations already accepted and still open. */
  activeAssociations: number;
}

export type AssociationDecision =
  | { accept: true }
  | { accept: false; result: number; source: number; reason: number; why: string };

/** PS3.8 9.3.4: which requests we refuse, with the A-ASSOCIATE-RJ result, source and reason. */
export function decideAssociation(facts: AssociationRequestFacts, settings: AssociationPolicySettings): AssociationDecision {
  const called = facts.calledAe.trim();
  const calling = facts.callingAe.trim();
  if (!settings.acceptAnyCalledAe && called !== settings.aeTitle.trim()) {
    return {
      accept: false, result: RejectResult.Permanent, source: RejectSource.ServiceUser, reason: RejectReason.CalledAeNotRecognized,
      why: `called AE title ${JSON.stringify(called)} is not ours (${JSON.stringify(settings.aeTitle)})`,
    };
  }
  if (settings.allowedCallingAes.length > 0 && !settings.allowedCallingAes.some((ae) => ae.trim() === calling)) {
    return {
      accept: false, result: RejectResult.Permanent, source: RejectSource.ServiceUser, reason: RejectReason.CallingAeNotRecognized,
      why: `calling AE title ${JSON.stringify(calling)} is not on the allowlist`,
    };
  }
  if (facts.activeAssociations >= settings.maxAssociations) {
    return {
      accept: false, result: RejectResult.Transient, source: RejectSource.ServiceProviderPresentation, reason: RejectReason.LocalLimitExceeded,
      why: `local limit exceeded: ${facts.activeAssociations} associations open, at most ${settings.maxAssociations}`,
    };
  }
  return { accept: true };
}
