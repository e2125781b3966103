/** The app's identity towards the OS; the same as `appId` in electron-builder.yml (checked by a test). */
export const APP_ID = 'org.dicomedge.desktop';
